"""Figures of the evaluation: the papers' temporal profiles (y-t slices) and per-frame metric curves.

Both write PNGs of an exact pixel size (``size_px`` = width, height) with matplotlib's Agg backend, so
they work headless and their size is predictable for documents.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from videodepth.errors import InputError, OutputError  # noqa: E402

DPI = 100


def yt_slice(video: np.ndarray, x: int) -> np.ndarray:
    """Column ``x`` of every frame stacked over time: [T, H, W(, C)] -> [H, T(, C)] (time runs left to right)."""
    frames = np.asarray(video)
    if frames.ndim not in (3, 4):
        raise InputError(f"video must have shape [T, H, W] or [T, H, W, C], got {list(frames.shape)}")
    width = frames.shape[2]
    if not -width <= x < width:
        raise InputError(f"column {x} is outside a video {width} pixels wide")
    return np.swapaxes(frames[:, :, x], 0, 1)


def _figure(size_px: tuple[int, int], ncols: int = 1, nrows: int = 1):
    width, height = size_px
    if width <= 0 or height <= 0:
        raise InputError(f"figure size must be positive, got {width}x{height}")
    return plt.subplots(nrows, ncols, figsize=(width / DPI, height / DPI), dpi=DPI, squeeze=False)


def _save(figure, out_png: str | Path) -> Path:
    path = Path(out_png)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # No bbox_inches="tight": it would change the pixel size.
        figure.savefig(path, dpi=DPI, format="png")
    except OSError as error:
        raise OutputError(f"cannot write figure {path}: {error.strerror or error}") from error
    finally:
        plt.close(figure)
    return path


def _normalised(slice_: np.ndarray) -> np.ndarray:
    """Scale a depth slice to [0, 1] on its own range: methods predict depth up to scale and shift."""
    values = np.asarray(slice_, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros_like(values)
    low, high = finite.min(), finite.max()
    return np.zeros_like(values) if high == low else np.clip((values - low) / (high - low), 0, 1)


def temporal_profile(
    columns: dict[str, np.ndarray],
    out_png: str | Path,
    title: str = "",
    size_px: tuple[int, int] = (1200, 400),
    cmap: str = "Spectral_r",
    per_row: int | None = None,
) -> Path:
    """Side-by-side y-t slices (from :func:`yt_slice`), one panel per name, as a PNG of ``size_px``,
    ``per_row`` panels to a row (default: all in one row).

    A [H, T, 3] slice is drawn as colour (uint8, or floats in [0, 1]); a [H, T] slice is a depth or
    disparity profile, stretched to its own range and coloured with ``cmap``. Smooth horizontal
    streaks mean a temporally steady prediction; vertical stripes are flicker.
    """
    if not columns:
        raise InputError("temporal_profile needs at least one slice")
    ncols = min(per_row or len(columns), len(columns))
    nrows = -(-len(columns) // ncols)
    figure, axes = _figure(size_px, ncols, nrows)
    for axis in axes.flat[len(columns) :]:
        axis.axis("off")
    for axis, (name, slice_) in zip(axes.flat[: len(columns)], columns.items(), strict=True):
        image = np.asarray(slice_)
        if image.ndim == 3 and image.shape[-1] == 3:
            axis.imshow(image, aspect="auto", interpolation="nearest")
        elif image.ndim == 2:
            axis.imshow(_normalised(image), aspect="auto", interpolation="nearest", cmap=cmap, vmin=0, vmax=1)
        else:
            plt.close(figure)
            raise InputError(f"slice '{name}' must be [H, T] or [H, T, 3], got {list(image.shape)}")
        axis.set_title(textwrap.fill(name, 30), fontsize=9)
        axis.set_xlabel("frame", fontsize=8)
        axis.set_yticks([])
        axis.tick_params(labelsize=7)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, out_png)


def metric_curves(
    per_frame: dict[str, np.ndarray],
    out_png: str | Path,
    ylabel: str,
    title: str = "",
    size_px: tuple[int, int] = (800, 400),
) -> Path:
    """One line per method of a per-frame metric (NaN frames leave gaps), as a PNG of ``size_px``."""
    if not per_frame:
        raise InputError("metric_curves needs at least one curve")
    figure, axes = _figure(size_px)
    axis = axes[0, 0]
    for name, values in per_frame.items():
        curve = np.asarray(values, dtype=np.float64)
        if curve.ndim != 1:
            plt.close(figure)
            raise InputError(f"curve '{name}' must be one value per frame, got shape {list(curve.shape)}")
        axis.plot(np.arange(curve.size), curve, label=name, linewidth=1.2)
    axis.set_xlabel("frame")
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    if title:
        axis.set_title(title)
    figure.tight_layout()
    return _save(figure, out_png)
