"""The built-in demo clip: a procedurally rendered scene, made once and cached, so that
``videodepth run --demo`` works on a fresh machine with no files and no network."""

from __future__ import annotations

import os
from pathlib import Path

from videodepth.io import RgbVideoWriter
from videodepth.synth.render import render_clip
from videodepth.synth.scenes import SceneConfig

# Bump the version whenever the scene below changes, so stale caches are not reused.
DEMO_NAME = "videodepth-demo-v1.mp4"
DEMO_SCENE = SceneConfig(family="indoor", camera_motion="orbit")
DEMO_SEED, DEMO_FRAMES, DEMO_SIZE = 7, 48, (256, 448)


def cache_dir() -> Path:
    if "VIDEODEPTH_CACHE" in os.environ:
        return Path(os.environ["VIDEODEPTH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "videodepth"


def demo_video() -> Path:
    path = cache_dir() / DEMO_NAME
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    clip = render_clip(DEMO_SCENE, DEMO_SEED, DEMO_FRAMES, *DEMO_SIZE)
    with RgbVideoWriter(path, fps=clip.fps) as writer:
        for index, frame in enumerate(clip.rgb):
            writer.write_rgb(index, frame)
    return path
