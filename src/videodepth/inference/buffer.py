"""A disk-backed buffer of raw per-frame predictions.

Predictions are written with positioned writes and read back one frame at a time, so neither
the process's memory nor its mapped pages grow with the length of the video.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class FrameBuffer:
    def __init__(self, path: str | Path, frame_shape: tuple[int, int], create: bool):
        self.path = Path(path)
        self.frame_shape = frame_shape
        self.frame_bytes = int(np.prod(frame_shape)) * 4
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
        self._fd = os.open(self.path, flags, 0o644)

    def write(self, index: int, frames: np.ndarray) -> None:
        data = np.ascontiguousarray(frames, dtype=np.float32).tobytes()
        os.pwrite(self._fd, data, index * self.frame_bytes)

    def read(self, index: int) -> np.ndarray:
        data = os.pread(self._fd, self.frame_bytes, index * self.frame_bytes)
        if len(data) != self.frame_bytes:
            raise OSError(f"{self.path}: frame {index} is missing")
        return np.frombuffer(data, dtype=np.float32).reshape(self.frame_shape)

    def close(self) -> None:
        """Idempotent, so that every path out of a job may close what it holds."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
