"""Realistic labels: degrade exact depth the way stereo-matched labels are degraded.

A virtual stereo rig (baseline ``b``, focal ``f``) turns depth into disparity ``f b / z`` in
pixels. On that disparity we apply, in order: left-right occlusion holes (background pixels the
second camera cannot see), edge fattening (foreground disparity spreads ``k`` pixels into the
background, as block matchers do), a smooth multiplicative low-frequency error that drifts over
time, random holes in blobs, a far cut-off (disparity below ``min_disparity`` is dropped), and
finally quantisation to ``1 / subpixel`` of a pixel. Sky and other invalid pixels stay invalid.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from videodepth.data.clip import Clip


def stereo_occlusions(disparity: np.ndarray, max_shift: int) -> np.ndarray:
    """Pixels hidden from a second camera to the right: some pixel s to the right is closer by > s px."""
    occluded = np.zeros(disparity.shape, bool)
    width = disparity.shape[-1]
    for s in range(1, min(max_shift, width - 1) + 1):
        occluded[..., : width - s] |= disparity[..., s:] - disparity[..., : width - s] > s
    return occluded


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int = 4) -> np.ndarray:
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def realistic_depth(clip: Clip, rng: np.random.Generator) -> Clip:
    T, H, W = clip.depth.shape
    focal = float(clip.K[0, 0])
    baseline = float(rng.uniform(0.05, 0.25) * clip.max_depth / 40)
    subpixel = int(rng.choice([1, 2, 4, 8]))
    fatten = int(rng.integers(1, 5))
    error_amplitude = float(rng.uniform(0.01, 0.05))
    min_disparity = float(rng.uniform(0.5, 2.0))
    hole_share = float(rng.uniform(0.0, 0.05))
    valid = clip.valid.copy()
    disparity = np.where(valid, focal * baseline / np.maximum(clip.depth, 1e-6), 0).astype(np.float32)
    max_shift = int(np.ceil(min(disparity.max(initial=0), 64)))
    occluded = stereo_occlusions(disparity, max_shift)
    kernel = np.ones((1, 2 * fatten + 1), np.uint8)
    field_a, field_b = _smooth_field(rng, (H, W)), _smooth_field(rng, (H, W))
    blobs = _smooth_field(rng, (H, W), cells=12)
    threshold = np.quantile(blobs, 1 - hole_share) if hole_share > 0 else np.inf
    out = np.empty_like(disparity)
    for i in range(T):
        fat = cv2.dilate(disparity[i], kernel)
        # only where the neighbourhood is clearly closer: that is a depth edge, not a slope
        edge = fat > disparity[i] * 1.05 + 0.5
        d = np.where(edge & valid[i], fat, disparity[i])
        w = i / max(T - 1, 1)
        d = d * (1 + error_amplitude * ((1 - w) * field_a + w * field_b))
        out[i] = np.round(d * subpixel) / subpixel
    holes = occluded | (out < min_disparity) | (blobs[None] > threshold) | ~valid
    depth = np.where(holes, 0, focal * baseline / np.maximum(out, 1e-6)).astype(np.float32)
    params = dict(baseline=baseline, focal=focal, subpixel=subpixel, fatten=fatten, error_amplitude=error_amplitude,
                  min_disparity=min_disparity, hole_share=hole_share)  # fmt: skip
    return dataclasses.replace(clip, depth=depth, valid=~holes, label="realistic", label_params=params)
