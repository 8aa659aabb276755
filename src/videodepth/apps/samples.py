"""One small sample picture per depth effect, on the synthetic scene (docs/EFFECTS.md's images).

Apart from the effects themselves so that :mod:`videodepth.apps.effects` and
:mod:`videodepth.apps.pointcloud` (which builds on the effects' depth conventions) do not import
each other.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from videodepth.apps.effects import (
    apply_matte,
    depth_slice,
    fog,
    matte,
    refocus,
    stereo,
    synthetic_scene,
)
from videodepth.apps.pointcloud import backproject, pointcloud_preview


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _write_png(path: Path, image: np.ndarray) -> None:
    channels = image.shape[2]
    code = cv2.COLOR_RGBA2BGRA if channels == 4 else cv2.COLOR_RGB2BGR
    if not cv2.imwrite(str(path), cv2.cvtColor(image, code), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"OpenCV could not write {path}")


def _checker_under(rgba: np.ndarray, cell: int = 8) -> np.ndarray:
    """Composite an RGBA frame over a grey checkerboard so transparency is visible in a plain image."""
    rows, cols = np.indices(rgba.shape[:2])
    board = np.where(((rows // cell + cols // cell) % 2)[..., None] == 0, 200.0, 150.0)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return to_uint8(rgba[..., :3] * alpha + board * (1.0 - alpha))


def demo_samples(out_dir: str | Path) -> list[Path]:
    """Write one small sample PNG per effect (``fx_*.png``) for the synthetic scene; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rgb, disp = synthetic_scene()
    gray = np.repeat(to_uint8(disp * 255.0)[..., None], 3, axis=2)
    points = backproject(disp, fov_deg=60.0, near=1.0, far=4.0)
    samples = {
        "fx_input.png": np.concatenate([rgb, gray], axis=1),
        "fx_fog.png": fog(rgb, disp, density=0.25, near=1.0, far=10.0),
        "fx_slice.png": _checker_under(depth_slice(rgb, disp, 0.35, 0.75)),
        "fx_matte.png": _checker_under(apply_matte(rgb, matte(disp, split=0.6, softness=0.2))),
        "fx_refocus.png": refocus(rgb, disp, focus=0.9, aperture=16.0, max_radius=8),
        "fx_stereo_sbs.png": stereo(rgb, disp, baseline_px=16.0, mode="sbs", convergence=0.4),
        "fx_anaglyph.png": stereo(rgb, disp, baseline_px=16.0, mode="anaglyph", convergence=0.4),
        "fx_pointcloud.png": pointcloud_preview(points, rgb, size=288),
    }
    paths = []
    for name, image in samples.items():
        _write_png(out / name, image)
        paths.append(out / name)
    return paths
