"""Helpers that build tiny synthetic videos for the io tests (PyAV; ffv1 in planar RGB by default, so levels survive exactly)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def frame_level(index: int) -> int:
    """Grey level of synthetic frame ``index``: distinct, well apart, inside 16..235."""
    return 20 + 12 * index


def write_video(
    path: Path,
    *,
    num_frames: int = 16,
    width: int = 96,
    height: int = 80,
    rate: int | Fraction = 30,
    codec: str = "ffv1",
    pix_fmt: str = "bgr0",
    pts_ms: Sequence[int] | None = None,
    rgba: tuple[int, int, int, int] | None = None,
) -> Path:
    """Uniform frames with level ``frame_level(i)`` (or one constant RGBA colour)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for index in range(num_frames):
            if rgba is not None:
                frame = av.VideoFrame.from_ndarray(np.full((height, width, 4), rgba, np.uint8), format="rgba")
            else:
                level = frame_level(index)
                frame = av.VideoFrame.from_ndarray(
                    np.full((height, width, 3), level, np.uint8), format="rgb24"
                )
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[index], Fraction(1, 1000)
            else:
                frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decoded_levels(frames: Sequence[np.ndarray]) -> list[int]:
    return [int(round(float(frame.mean()))) for frame in frames]


def index_of_level(level: int) -> int:
    return round((level - 20) / 12)
