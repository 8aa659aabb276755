"""The one normalisation an effect uses for a whole depth video.

Depth videos are opened with :func:`videodepth.io.depthfiles.open_depth` (what ``videodepth run``
writes: npz, png16 or exr folders, plus a plain ``.npy``), which reads them one frame at a time.
Values are taken as relative disparity (near = high). :class:`DepthRange` maps them to ``[0, 1]`` with
one affine map for the whole video (min-max or percentile-clipped), so effects do not flicker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from videodepth.errors import InputError
from videodepth.io.colormap import normalize
from videodepth.io.depthfiles import DepthVideo

Normalization = Literal["video", "none"]
# How many depth values the percentile estimate looks at, over the whole video (bounded memory).
PERCENTILE_SAMPLE_BUDGET = 2_000_000


@dataclass(frozen=True)
class DepthRange:
    """One affine map ``[lo, hi] -> [0, 1]`` (clipped) applied to every frame of a video."""

    lo: float
    hi: float

    def apply(self, depth: np.ndarray) -> np.ndarray:
        return normalize(depth, self.lo, self.hi)


def _sample(frame: np.ndarray, per_frame: int) -> np.ndarray:
    flat = frame.ravel()
    step = max(1, flat.size // per_frame)
    return flat[::step]


def measure_range(
    depth: DepthVideo, normalization: Normalization = "video", clip_percent: float = 0.0
) -> DepthRange:
    """The whole video's range, in one streaming pass.

    ``normalization="video"``: min and max over all frames, or with ``clip_percent > 0`` the
    ``clip_percent`` and ``100 - clip_percent`` percentiles (estimated from at most
    :data:`PERCENTILE_SAMPLE_BUDGET` evenly spaced values, so memory stays bounded).
    ``"none"``: the values already are disparity in ``[0, 1]`` and are used as they are.
    """
    if normalization not in ("video", "none"):
        raise InputError(f"normalization must be 'video' or 'none', got {normalization!r}")
    if not 0.0 <= clip_percent < 50.0:
        raise InputError(f"percentile clipping must be in [0, 50), got {clip_percent:g}")
    if normalization == "none":
        return DepthRange(0.0, 1.0)
    lo, hi = np.inf, -np.inf
    per_frame = max(1, PERCENTILE_SAMPLE_BUDGET // depth.num_frames)
    samples = []
    for frame in depth.frames():
        finite = frame[np.isfinite(frame)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
            if clip_percent > 0:
                samples.append(_sample(finite, per_frame))
    if not np.isfinite(lo):
        raise InputError(f"{depth.path}: the depth has no finite values")
    if clip_percent > 0:
        lo, hi = (
            float(v) for v in np.percentile(np.concatenate(samples), [clip_percent, 100 - clip_percent])
        )
    if hi <= lo:
        raise InputError(f"{depth.path}: the depth is constant ({lo:g}); there is nothing to map")
    return DepthRange(lo, hi)


def fit_to(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a depth frame to ``size`` = (H, W) bilinearly (a no-op when it already fits)."""
    if depth.shape == tuple(size):
        return depth
    return cv2.resize(np.ascontiguousarray(depth), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
