"""Point clouds from one depth frame: pinhole back-projection, binary PLY export and a splat preview.

Coordinates follow the OpenCV camera convention: x to the right, y DOWN, z forward (away from the
camera), in the same units as ``near``/``far``. Depth comes from relative disparity through
:func:`videodepth.apps.effects.disparity_to_depth`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from videodepth.apps.effects import (
    DEFAULT_FAR,
    DEFAULT_NEAR,
    check_disp,
    check_near_far,
    check_number,
    disparity_to_depth,
)
from videodepth.errors import InputError, OutputError
from videodepth.io.atomic import atomic_file

PLY_VERTEX = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
)


def focal_length_px(width: int, fov_deg: float) -> float:
    """Pinhole focal length (pixels) for a horizontal field of view over ``width`` pixels."""
    return (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)


def backproject(
    disp: np.ndarray, fov_deg: float = 60.0, near: float = DEFAULT_NEAR, far: float = DEFAULT_FAR
) -> np.ndarray:
    """Back-project every pixel to 3-D: float32 ``[H, W, 3]`` (x right, y down, z = depth forward).

    A pinhole camera with horizontal field of view ``fov_deg`` and principal point at the image centre;
    pixel ``(row, col)`` is sampled at its centre ``(col + 0.5, row + 0.5)``.
    """
    disp = check_disp(disp)
    fov_deg = check_number(fov_deg, "fov_deg", low=0.0, low_open=True, high=179.0)
    near, far = check_near_far(near, far)
    height, width = disp.shape
    focal = focal_length_px(width, fov_deg)
    depth = disparity_to_depth(disp, near, far).astype(np.float64)
    cols = (np.arange(width) + 0.5 - width / 2.0)[None, :]
    rows = (np.arange(height) + 0.5 - height / 2.0)[:, None]
    return np.stack([cols * depth / focal, rows * depth / focal, depth], axis=-1).astype(np.float32)


def _flatten_cloud(
    points: np.ndarray, colors: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a cloud given per pixel (``[H, W, 3]``) or as a list (``[N, 3]``) and flatten it."""
    if not isinstance(points, np.ndarray) or points.ndim < 2 or points.shape[-1] != 3:
        raise InputError(f"points must have shape [..., 3], got {list(np.shape(points))}")
    if not isinstance(colors, np.ndarray) or colors.shape != points.shape:
        raise InputError(
            f"colors shape {list(np.shape(colors))} does not match points shape {list(points.shape)}"
        )
    if colors.dtype != np.uint8:
        raise InputError(f"colors must be uint8, got {colors.dtype}")
    if not np.issubdtype(points.dtype, np.floating):
        raise InputError(f"points must be floating point, got {points.dtype}")
    if not np.isfinite(points).all():
        raise InputError("points contain NaN or infinite values")
    flat_points, flat_colors = points.reshape(-1, 3), colors.reshape(-1, 3)
    if mask is None:
        return flat_points, flat_colors
    if not isinstance(mask, np.ndarray) or mask.shape != points.shape[:-1]:
        raise InputError(f"mask shape {list(np.shape(mask))} does not match points {list(points.shape[:-1])}")
    keep = mask.astype(bool).ravel()
    return flat_points[keep], flat_colors[keep]


def write_ply(
    path: str | os.PathLike[str], points: np.ndarray, colors: np.ndarray, mask: np.ndarray | None = None
) -> int:
    """Write a binary little-endian PLY (x, y, z float32; red, green, blue uchar); return the point count.

    ``points``/``colors`` are ``[H, W, 3]`` or ``[N, 3]``; ``mask`` (same leading shape) selects points.
    The file appears atomically (``videodepth.io.atomic_file``).
    """
    flat_points, flat_colors = _flatten_cloud(points, colors, mask)
    vertices = np.empty(len(flat_points), dtype=PLY_VERTEX)
    for axis, name in enumerate("xyz"):
        vertices[name] = flat_points[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        vertices[name] = flat_colors[:, channel]
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment written by videodepth\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    target = Path(path)
    if not target.parent.is_dir():
        raise OutputError(f"cannot write {target}: folder {target.parent} does not exist")
    try:
        with atomic_file(target) as temporary, open(temporary, "wb") as handle:
            handle.write(header.encode("ascii"))
            handle.write(vertices.tobytes())
    except OSError as error:  # atomic_file has already removed the temporary file
        raise OutputError(f"cannot write {target}: {error.strerror or error}") from None
    return len(vertices)


def _rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    around_y = np.array(
        [[math.cos(yaw), 0.0, math.sin(yaw)], [0.0, 1.0, 0.0], [-math.sin(yaw), 0.0, math.cos(yaw)]]
    )
    around_x = np.array(
        [[1.0, 0.0, 0.0], [0.0, math.cos(pitch), -math.sin(pitch)], [0.0, math.sin(pitch), math.cos(pitch)]]
    )
    return around_x @ around_y


def pointcloud_preview(
    points: np.ndarray,
    colors: np.ndarray,
    size: int = 512,
    *,
    mask: np.ndarray | None = None,
    yaw_deg: float = 35.0,
    pitch_deg: float = 20.0,
    perspective: bool = True,
    point_size: int = 2,
    background: Sequence[int] = (24, 24, 28),
    max_points: int | None = None,
) -> np.ndarray:
    """Render the cloud from a viewpoint rotated about its centre: uint8 ``[size, size, 3]``.

    The cloud is turned by ``yaw_deg`` about the vertical axis and ``pitch_deg`` about the horizontal one,
    scaled to fit the square and splatted as ``point_size`` pixel squares with a z-buffer (near wins).
    Clouds larger than ``max_points`` (default ``2 * size**2``, more than the square can show) are
    thinned to evenly spaced points first, which keeps the preview fast for full-HD frames.
    """
    size = int(check_number(size, "size", low=16.0, high=8192.0))
    point_size = int(check_number(point_size, "point_size", low=1.0, high=16.0))
    check_number(yaw_deg, "yaw_deg")
    check_number(pitch_deg, "pitch_deg")
    flat_points, flat_colors = _flatten_cloud(points, colors, mask)
    limit = 2 * size * size if max_points is None else int(check_number(max_points, "max_points", low=1.0))
    if len(flat_points) > limit:
        keep = np.linspace(0, len(flat_points) - 1, limit).astype(np.int64)
        flat_points, flat_colors = flat_points[keep], flat_colors[keep]
    canvas = np.empty((size, size, 3), dtype=np.uint8)
    canvas[:] = np.asarray(background, dtype=np.uint8)
    if len(flat_points) == 0:
        return canvas
    lo, hi = flat_points.min(axis=0).astype(np.float64), flat_points.max(axis=0).astype(np.float64)
    centred = (flat_points - (lo + hi) / 2.0) @ _rotation(yaw_deg, pitch_deg).T
    if perspective:
        # Camera on the -z side, far enough that the whole cloud lies in front of it.
        radius = max(float(np.linalg.norm(centred, axis=1).max()), 1e-9)
        camera_z = centred[:, 2] + 2.5 * radius
        projected = centred[:, :2] / camera_z[:, None]
    else:
        camera_z = centred[:, 2]
        projected = centred[:, :2]
    # Fit the projected cloud into the square with a small margin, keeping its aspect ratio.
    low, high = projected.min(axis=0), projected.max(axis=0)
    scale = 0.92 * size / max(float((high - low).max()), 1e-12)
    pixel_xy = np.floor((projected - (low + high) / 2.0) * scale + size / 2.0).astype(np.int64)
    cols, rows = pixel_xy[:, 0], pixel_xy[:, 1]
    offsets = np.arange(point_size) - point_size // 2
    splat_rows = (rows[:, None, None] + offsets[:, None]).repeat(point_size, axis=2).ravel()
    splat_cols = (cols[:, None, None] + offsets[None, :]).repeat(point_size, axis=1).ravel()
    splat_depth = np.repeat(camera_z, point_size * point_size)
    splat_index = np.repeat(np.arange(len(centred)), point_size * point_size)
    inside = (splat_rows >= 0) & (splat_rows < size) & (splat_cols >= 0) & (splat_cols < size)
    pixel = (splat_rows * size + splat_cols)[inside]
    near_first = np.argsort(splat_depth[inside], kind="stable")
    _, first = np.unique(pixel[near_first], return_index=True)
    winners = near_first[first]
    canvas.reshape(-1, 3)[pixel[winners]] = flat_colors[splat_index[inside][winners]]
    return canvas
