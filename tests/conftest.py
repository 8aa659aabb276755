"""Shared fixtures: tiny random models in every supported layout and tiny videos."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def restore_threads():
    """Commands set torch's thread count for the process (``--threads``, or the idle cores); each
    test starts from the same count, so results do not depend on which tests ran before."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


torch.set_num_threads(2)
logging.getLogger("transformers").setLevel(logging.ERROR)
logging.getLogger("diffusers").setLevel(logging.ERROR)


def write_test_video(path: Path, frames: np.ndarray, fps: int = 24) -> Path:
    """Lossless-enough H.264 so decoded frames stay close to ``frames`` (uint8 [T, H, W, 3])."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = "yuv444p"
    stream.options = {"crf": "0"}
    for frame in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def moving_frames(num_frames: int, height: int = 64, width: int = 128, seed: int = 0) -> np.ndarray:
    """A textured square sliding over a gradient: cheap, deterministic, with motion."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 255, (height // 2, width // 4, 3), dtype=np.uint8)
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    frames[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, None]
    frames[..., 2] = np.linspace(255, 0, height, dtype=np.uint8)[None, :, None]
    for t in range(num_frames):
        x = (3 * t) % (width - texture.shape[1])
        frames[t, height // 4 : height // 4 + texture.shape[0], x : x + texture.shape[1]] = texture
    return frames


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Folders of tiny random models: ours, and the DepthCrafter / ChronoDepth layouts."""
    from videodepth.models.architectures import random_model

    root = tmp_path_factory.mktemp("models")
    random_model("videodepth", seed=1).save_pretrained(root / "ours")
    random_model("depthcrafter", seed=2).save_published_layout(root / "DepthCrafter-unet", root / "svd-dc")
    random_model("chronodepth", seed=3).save_published_layout(root / "ChronoDepth-unet", root / "svd-cd")
    return {
        "ours": root / "ours",
        "depthcrafter": root / "DepthCrafter-unet",
        "depthcrafter_base": root / "svd-dc",
        "chronodepth": root / "ChronoDepth-unet",
        "chronodepth_base": root / "svd-cd",
    }


@pytest.fixture(scope="session")
def tiny_video(tmp_path_factory) -> Path:
    return write_test_video(tmp_path_factory.mktemp("videos") / "clip.mp4", moving_frames(21, 72, 136))
