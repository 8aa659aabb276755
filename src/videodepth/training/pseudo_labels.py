"""Training shards from unlabelled video: a teacher model's depth as the label.

Real footage with depth a strong model predicted is the other route (besides real RGB-D) to
training data that looks like what users film: e.g. a published DepthCrafter checkpoint on a GPU
labels a user's footage, and the small CPU model is trained on the result. Each shard is predicted
on its own (the teacher's long-video strategy runs inside it) and normalised over its frames,
exactly as training normalises a clip, so nothing is lost by cutting the video into shards. The
video is read as a stream: one shard's frames are held at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from videodepth.data.clip import Sequence, sequence_to_clip
from videodepth.data.shards import write_shard
from videodepth.errors import InputError
from videodepth.inference.pipeline import VideoDepthPipeline
from videodepth.inference.settings import RunSettings
from videodepth.io.video import VideoReader

# Shards store metric-style depth; a teacher's relative disparity d in [0, 1] is stored as
# 1 / (d + OFFSET), whose inverse training normalises back to d exactly.
DISPARITY_OFFSET = 0.1


def teacher_depth(disparity: np.ndarray) -> np.ndarray:
    """Relative disparity in [0, 1] (near = 1) as the depth a shard stores."""
    return 1.0 / (disparity.astype(np.float32) + np.float32(DISPARITY_OFFSET))


def pseudo_label_video(
    pipeline: VideoDepthPipeline,
    video: str | Path,
    out: str | Path,
    settings: RunSettings,
    frames_per_shard: int = 48,
    max_res: int | None = None,
    teacher: str = "",
    progress: bool = True,
) -> list[Path]:
    """Label ``video`` with ``pipeline``'s predictions and write one ``fine``-label shard per
    ``frames_per_shard`` frames (the last one may be shorter); returns the shard paths."""
    if frames_per_shard < 1:
        raise InputError(f"frames per shard must be at least 1, got {frames_per_shard}")
    video, out = Path(video), Path(out)
    reader = VideoReader(
        video, max_res=max_res or pipeline.config.max_res, multiple=max(64, pipeline.size_multiple)
    )
    stem = video.stem if video.is_file() else video.name
    paths = []
    bar = tqdm(
        total=reader.num_frames,
        desc=f"labelling {stem}",
        unit="frame",
        disable=not progress,
        dynamic_ncols=True,
    )
    for start, frames in _chunks(iter(reader), frames_per_shard):
        disparity = pipeline(frames, settings)
        bar.update(len(frames))
        sequence = Sequence(
            name=stem,
            rgb=frames,
            depth=teacher_depth(disparity),
            K=None,
            poses_c2w=None,
            max_depth=1.0 / DISPARITY_OFFSET + 1.0,
            fps=reader.fps,
            source=f"pseudo-label of {video.name} by {teacher or 'a videodepth model'}",
        )
        clip = dataclasses.replace(
            sequence_to_clip(sequence, slice(None), "fine"), seed=start
        )  # its first frame
        paths.append(write_shard(clip, out / f"{stem}_{start:06d}_pseudo.npz"))
    bar.close()
    if not paths:
        raise InputError(f"{video}: no frames to label")
    return paths


def _chunks(frames: Iterator[np.ndarray], size: int) -> Iterator[tuple[int, np.ndarray]]:
    start, held = 0, []
    for frame in frames:
        held.append(frame)
        if len(held) == size:
            yield start, np.stack(held)
            start, held = start + size, []
    if held:
        yield start, np.stack(held)
