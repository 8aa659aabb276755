"""Contact sheet: a PNG grid of RGB frames and colour-mapped depth, one row per clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np
from PIL import Image

from videodepth.errors import OutputError


def colourise_depth(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Inverse depth through the 'inferno' colour map (near = bright); invalid pixels black."""
    disparity = np.where(valid, 1.0 / np.maximum(depth, 1e-6), 0)
    if valid.any():
        low, high = np.percentile(disparity[valid], [1, 99])
        disparity = np.clip((disparity - low) / max(high - low, 1e-8), 0, 1)
    rgb = (matplotlib.colormaps["inferno"](disparity)[..., :3] * 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def contact_sheet(
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]], thumb: tuple[int, int], frames: int = 3
) -> np.ndarray:
    """rows: (rgb [T,H,W,3], depth [T,H,W], valid [T,H,W]); each row shows ``frames`` rgb|depth pairs."""
    lines = []
    for rgb, depth, valid in rows:
        picks = np.linspace(0, len(rgb) - 1, frames).round().astype(int)
        cells = []
        for i in picks:
            cells.append(cv2.resize(rgb[i], thumb[::-1], interpolation=cv2.INTER_AREA))
            cells.append(
                cv2.resize(colourise_depth(depth[i], valid[i]), thumb[::-1], interpolation=cv2.INTER_NEAREST)
            )
        lines.append(np.concatenate(cells, axis=1))
    return np.concatenate(lines, axis=0)


def save_png(image: np.ndarray, path: str | Path, colours: int | None = 256) -> Path:
    """Save small: an adaptive palette keeps a photo grid well under a megabyte."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image)
        if colours:
            picture = picture.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        picture.save(path, optimize=True)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error}") from error
    return path
