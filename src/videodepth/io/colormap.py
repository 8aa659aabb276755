"""Colour maps for disparity previews.

Convention: the input is *disparity* normalised to [0, 1], so 1 is the nearest surface. Every map
is oriented so that near is the "hot"/bright end: inferno, magma and viridis run dark -> bright,
gray runs black -> white, turbo runs blue -> red, and ``spectral`` is matplotlib's ``Spectral_r``
(blue far -> red near), the reverse of matplotlib's own ``Spectral``.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from videodepth.choices import COLORMAPS
from videodepth.errors import InputError

# Our name -> matplotlib's name.
_MATPLOTLIB_NAMES = {
    "inferno": "inferno",
    "turbo": "turbo",
    "spectral": "Spectral_r",
    "gray": "gray",
    "magma": "magma",
    "viridis": "viridis",
}
assert tuple(_MATPLOTLIB_NAMES) == COLORMAPS, "videodepth.choices.COLORMAPS and this table disagree"


def check_colormap(name: str) -> str:
    """Return the canonical (lower-case) name, or raise :class:`InputError` listing valid ones."""
    key = name.lower()
    if key not in _MATPLOTLIB_NAMES:
        raise InputError(f"unknown colour map {name!r}; choose one of: {', '.join(COLORMAPS)}")
    return key


@cache
def colormap_lut(name: str = "inferno") -> np.ndarray:
    """The 256x3 uint8 lookup table of a colour map (entry 0 = far, 255 = near)."""
    import matplotlib

    cmap = matplotlib.colormaps[_MATPLOTLIB_NAMES[check_colormap(name)]].resampled(256)
    rgb = cmap(np.arange(256))[:, :3]
    lut = np.round(rgb * 255.0).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def colorize(disparity: np.ndarray, cmap: str = "inferno") -> np.ndarray:
    """Map an HxW disparity in [0, 1] to an HxWx3 uint8 RGB image; values outside are clipped, NaN is far."""
    if disparity.ndim != 2:
        raise ValueError(f"colorize expects an HxW array, got shape {disparity.shape}")
    lut = colormap_lut(cmap)
    values = np.nan_to_num(np.asarray(disparity, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    index = np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    return lut[index]


def normalize(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Affinely map ``[lo, hi]`` to ``[0, 1]`` (clipped, float32); a degenerate range gives zeros."""
    values = np.asarray(values, dtype=np.float32)
    if not np.isfinite(hi - lo) or hi <= lo:
        return np.zeros_like(values)
    return np.clip((values - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0)


def percentile_range(sample: np.ndarray, low: float = 2.0, high: float = 98.0) -> tuple[float, float]:
    """Robust (lo, hi) of the finite values in ``sample``; (0, 1) if there are none."""
    finite = np.asarray(sample, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [low, high])
    return float(lo), float(hi)
