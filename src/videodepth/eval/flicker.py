"""Flicker of a depth video without ground truth: optical-flow warping error between consecutive frames.

For each pair (t, t+1) the RGB frames give a dense DIS optical flow (OpenCV) in both directions; the
prediction of frame t+1 is warped back onto frame t along the forward flow, pixels failing the
forward-backward consistency check (occlusions, unreliable flow; Sundaram et al., ECCV 2010) or landing
outside the image are dropped, and the score is the mean absolute difference of the disparities on the
rest. The disparity is first normalised once for the whole video, ``(d - median) / mean|d - median|``,
so the score ignores the global scale and shift a relative-depth model is free to choose but still sees
frame-to-frame changes of them. A static scene with a steady prediction scores 0.
"""

from __future__ import annotations

import cv2
import numpy as np

from videodepth.errors import InputError

# Forward-backward check thresholds from Sundaram et al.: |f + b|^2 < ALPHA (|f|^2 + |b|^2) + BETA.
CONSISTENCY_ALPHA = 0.01
CONSISTENCY_BETA = 0.5


def normalise_disparity(disparity: np.ndarray) -> np.ndarray:
    """Shift and scale the whole video to median 0 and mean absolute deviation 1 (all zeros if constant)."""
    video = np.asarray(disparity, dtype=np.float64)
    median = np.median(video)
    spread = np.mean(np.abs(video - median))
    if spread == 0:
        return np.zeros_like(video)
    return (video - median) / spread


def _grayscale(rgb: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY) for frame in rgb])


def _check_inputs(rgb: np.ndarray, disparity: np.ndarray) -> None:
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise InputError(f"rgb must be uint8 [T, H, W, 3], got {rgb.dtype} {list(rgb.shape)}")
    if disparity.shape != rgb.shape[:3]:
        raise InputError(f"disparity shape {list(disparity.shape)} does not match rgb {list(rgb.shape[:3])}")
    if rgb.shape[0] < 2:
        raise InputError("flicker needs at least 2 frames")


def _sample(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _pair_error(
    flow_engine: cv2.DISOpticalFlow, gray: np.ndarray, disp: np.ndarray, grid: tuple[np.ndarray, np.ndarray]
) -> float:
    """Mean |disp[0] - warp(disp[1])| over the consistent pixels of one frame pair; NaN if none."""
    forward = flow_engine.calc(gray[0], gray[1], None)
    backward = flow_engine.calc(gray[1], gray[0], None)
    map_x = grid[0] + forward[..., 0]
    map_y = grid[1] + forward[..., 1]
    height, width = gray.shape[1:]
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    backward_at_target = _sample(backward, map_x, map_y)
    round_trip = np.sum((forward + backward_at_target) ** 2, axis=-1)
    magnitude = np.sum(forward**2, axis=-1) + np.sum(backward_at_target**2, axis=-1)
    consistent = inside & (round_trip < CONSISTENCY_ALPHA * magnitude + CONSISTENCY_BETA)
    if not consistent.any():
        return float("nan")
    warped_next = _sample(disp[1].astype(np.float32), map_x, map_y).astype(np.float64)
    return float(np.mean(np.abs(disp[0] - warped_next)[consistent]))


def flicker_per_frame(rgb: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """Warping error of each consecutive pair, shape [T - 1] (NaN where no pixel passes the checks)."""
    rgb = np.asarray(rgb)
    disparity = np.asarray(disparity)
    _check_inputs(rgb, disparity)
    gray = _grayscale(rgb)
    disp = normalise_disparity(disparity)
    height, width = gray.shape[1:]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    flow_engine = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return np.array(
        [
            _pair_error(flow_engine, gray[t : t + 2], disp[t : t + 2], (grid_x, grid_y))
            for t in range(len(gray) - 1)
        ]
    )


def flicker(rgb: np.ndarray, disparity: np.ndarray) -> float:
    """Mean flow-warping error of the normalised disparity over all consecutive frame pairs (lower is steadier).

    ``rgb`` is uint8 [T, H, W, 3] and ``disparity`` [T, H, W] at the same size.
    """
    per_pair = flicker_per_frame(rgb, disparity)
    measured = per_pair[~np.isnan(per_pair)]
    if measured.size == 0:
        raise InputError("flicker: no pixel could be matched between any two consecutive frames")
    return float(measured.mean())
