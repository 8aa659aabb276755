"""Depth-driven video effects, one frame at a time.

Every function here takes ONE frame and returns ONE frame, so a caller can stream a video of any
length through it. Inputs follow the layout ``videodepth run`` writes:

* ``rgb``: uint8 ``[H, W, 3]``;
* ``disp``: float ``[H, W]`` relative disparity in ``[0, 1]`` (near = 1, far = 0), normalised once for
  the whole video by the caller so that effects do not flicker.

Effects that need a metric-like depth map disparity with :func:`disparity_to_depth`, i.e.
``depth = 1 / (disp * (1/near - 1/far) + 1/far)``: ``disp = 1`` lands on ``near``, ``disp = 0`` on
``far``, and depth is linear in inverse depth in between (which is what relative disparity is).

All functions are deterministic (no randomness, no global state) and raise
:class:`videodepth.errors.InputError` with a one-line message for bad inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

from videodepth.errors import InputError

DEFAULT_NEAR = 1.0
DEFAULT_FAR = 10.0
# Tolerance for disparity values that are "in [0, 1]" up to float rounding of the caller's normalisation.
_DISP_TOLERANCE = 1e-4

StereoMode = Literal["sbs", "anaglyph", "left-right"]
SliceBackground = Literal["transparent", "black"]


# ----------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------


def check_rgb(rgb: np.ndarray, name: str = "rgb") -> np.ndarray:
    """Return ``rgb`` if it is a uint8 ``[H, W, 3]`` array, else raise :class:`InputError`."""
    if not isinstance(rgb, np.ndarray):
        raise InputError(f"{name} must be a numpy array, got {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"{name} must have shape [H, W, 3], got {list(rgb.shape)}")
    if rgb.dtype != np.uint8:
        raise InputError(f"{name} must be uint8, got {rgb.dtype}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputError(f"{name} is empty: shape {list(rgb.shape)}")
    return rgb


def check_disp(disp: np.ndarray, shape: Sequence[int] | None = None, name: str = "disp") -> np.ndarray:
    """Validate a relative disparity map and return it as float32 clipped to ``[0, 1]``.

    ``shape`` is the ``(H, W)`` the map must match (the RGB frame's), if given.
    """
    if not isinstance(disp, np.ndarray):
        raise InputError(f"{name} must be a numpy array, got {type(disp).__name__}")
    if disp.ndim != 2:
        raise InputError(f"{name} must be 2-D [H, W], got shape {list(disp.shape)}")
    if not (np.issubdtype(disp.dtype, np.floating) or np.issubdtype(disp.dtype, np.integer)):
        raise InputError(f"{name} must be a real-valued array, got {disp.dtype}")
    if shape is not None and tuple(disp.shape) != tuple(shape[:2]):
        raise InputError(f"{name} shape {list(disp.shape)} does not match the frame's {list(shape[:2])}")
    if disp.size == 0:
        raise InputError(f"{name} is empty")
    disp = disp.astype(np.float32, copy=False)
    if not np.isfinite(disp).all():
        raise InputError(f"{name} contains NaN or infinite values")
    lo, hi = float(disp.min()), float(disp.max())
    if lo < -_DISP_TOLERANCE or hi > 1 + _DISP_TOLERANCE:
        raise InputError(f"{name} must be relative disparity in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return np.clip(disp, 0.0, 1.0)


def _check_frame(rgb: np.ndarray, disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    check_rgb(rgb)
    return rgb, check_disp(disp, rgb.shape)


def check_number(
    value: float,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """Return ``value`` as float if finite and within ``[low, high]`` (``(low, high]`` if ``low_open``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{name} must be finite, got {value!r}")
    if low is not None and (number <= low if low_open else number < low):
        bracket = "(" if low_open else "["
        upper = "inf" if high is None else f"{high:g}"
        raise InputError(f"{name} must be in {bracket}{low:g}, {upper}], got {number:g}")
    if high is not None and number > high:
        lower = "-inf" if low is None else f"{low:g}"
        raise InputError(f"{name} must be in [{lower}, {high:g}], got {number:g}")
    return number


def check_near_far(near: float, far: float) -> tuple[float, float]:
    """Validate a ``0 < near < far`` depth range."""
    near = check_number(near, "near", low=0.0, low_open=True)
    far = check_number(far, "far", low=0.0, low_open=True)
    if not near < far:
        raise InputError(f"near must be smaller than far, got near={near:g}, far={far:g}")
    return near, far


def _check_color(color: Sequence[float], name: str = "color") -> np.ndarray:
    try:
        values = np.asarray(color, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be three numbers in [0, 255], got {color!r}") from None
    if values.shape != (3,) or not np.isfinite(values).all() or values.min() < 0 or values.max() > 255:
        raise InputError(f"{name} must be three numbers in [0, 255], got {color!r}")
    return values


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------
# Depth mapping
# ----------------------------------------------------------------------------------------------------------


def disparity_to_depth(disp: np.ndarray, near: float = DEFAULT_NEAR, far: float = DEFAULT_FAR) -> np.ndarray:
    """Map relative disparity in ``[0, 1]`` to depth in ``[near, far]`` (linear in inverse depth)."""
    near, far = check_near_far(near, far)
    disp = check_disp(disp)
    inverse_depth = disp.astype(np.float64) * (1.0 / near - 1.0 / far) + 1.0 / far
    return (1.0 / inverse_depth).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# Fog, slice, matte
# ----------------------------------------------------------------------------------------------------------


def fog_opacity(depth: np.ndarray, density: float) -> np.ndarray:
    """Beer-Lambert fog opacity ``1 - exp(-density * depth)`` (float32, same shape as ``depth``)."""
    return (1.0 - np.exp(-float(density) * depth.astype(np.float64))).astype(np.float32)


def fog(
    rgb: np.ndarray,
    disp: np.ndarray,
    density: float,
    color: Sequence[float] = (200, 200, 210),
    near: float = DEFAULT_NEAR,
    far: float = DEFAULT_FAR,
) -> np.ndarray:
    """Exponential (homogeneous-medium) fog: blend each pixel towards ``color`` by its depth.

    ``density`` is in inverse depth units (``1/near``-``1/far`` scale); the opacity of a pixel at depth
    ``z`` is ``1 - exp(-density * z)``. Returns uint8 ``[H, W, 3]``.
    """
    rgb, disp = _check_frame(rgb, disp)
    density = check_number(density, "density", low=0.0)
    fog_color = _check_color(color)
    opacity = fog_opacity(disparity_to_depth(disp, near, far), density)[..., None].astype(np.float64)
    return _to_uint8(rgb * (1.0 - opacity) + fog_color * opacity)


def depth_slice(
    rgb: np.ndarray,
    disp: np.ndarray,
    lo: float,
    hi: float,
    background: SliceBackground = "transparent",
) -> np.ndarray:
    """Keep exactly the pixels with ``lo <= disp <= hi``; the rest become transparent or black.

    ``background="transparent"`` returns RGBA ``[H, W, 4]`` (alpha 255 kept / 0 dropped, dropped pixels'
    colour zeroed); ``"black"`` returns RGB ``[H, W, 3]``.
    """
    rgb, disp = _check_frame(rgb, disp)
    lo = check_number(lo, "lo", low=0.0, high=1.0)
    hi = check_number(hi, "hi", low=0.0, high=1.0)
    if lo > hi:
        raise InputError(f"slice range is empty: lo={lo:g} > hi={hi:g}")
    if background not in ("transparent", "black"):
        raise InputError(f"background must be 'transparent' or 'black', got {background!r}")
    keep = (disp >= lo) & (disp <= hi)
    out = np.where(keep[..., None], rgb, np.uint8(0))
    if background == "black":
        return out
    alpha = np.where(keep, np.uint8(255), np.uint8(0))
    return np.dstack([out, alpha])


def matte(disp: np.ndarray, split: float, softness: float) -> np.ndarray:
    """Soft foreground alpha: 1 in front of ``split`` (higher disparity), 0 behind it.

    The transition is a smoothstep over ``[split - softness/2, split + softness/2]`` in disparity;
    ``softness = 0`` gives a hard ``disp >= split`` mask. Returns float32 ``[H, W]`` in ``[0, 1]``.
    """
    disp = check_disp(disp)
    split = check_number(split, "split", low=0.0, high=1.0)
    softness = check_number(softness, "softness", low=0.0, high=1.0)
    if softness == 0.0:
        return (disp >= split).astype(np.float32)
    t = np.clip((disp - (split - softness / 2)) / softness, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def apply_matte(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Attach ``alpha`` (float in ``[0, 1]``) to ``rgb`` as an 8-bit channel: RGBA uint8 ``[H, W, 4]``."""
    check_rgb(rgb)
    alpha = check_disp(alpha, rgb.shape, name="alpha")
    return np.dstack([rgb, _to_uint8(alpha * 255.0)])


# ----------------------------------------------------------------------------------------------------------
# Refocus (depth of field)
# ----------------------------------------------------------------------------------------------------------


def _disc_kernel(radius: int) -> np.ndarray:
    size = 2 * radius + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)).astype(np.float32)
    return kernel / kernel.sum()


def _blur(image: np.ndarray, radius: int) -> np.ndarray:
    if radius == 0:
        return image
    return cv2.filter2D(image, -1, _disc_kernel(radius), borderType=cv2.BORDER_REFLECT)


def blur_levels(max_radius: int, levels: int) -> np.ndarray:
    """The discrete blur radii (pixels) used by :func:`refocus`: 0 and up to ``levels`` steps to ``max_radius``."""
    return np.unique(np.rint(np.linspace(0, max_radius, levels + 1)).astype(int))


def refocus(
    rgb: np.ndarray,
    disp: np.ndarray,
    focus: float,
    aperture: float,
    max_radius: int = 12,
    levels: int = 6,
) -> np.ndarray:
    """Depth-of-field blur around the disparity ``focus``.

    A pixel's blur radius (pixels) is ``min(max_radius, aperture * |disp - focus|)``, quantised to
    ``levels`` discrete radii. The frame is cut into layers by signed radius; each layer is blurred with
    a disc kernel by normalised convolution (so it gathers only its own colours) and the layers are
    composited far to near. In-focus pixels therefore stay exactly unchanged unless a blurred nearer
    layer spreads over them, and a blurred background never pulls foreground colour into itself.
    """
    rgb, disp = _check_frame(rgb, disp)
    focus = check_number(focus, "focus", low=0.0, high=1.0)
    aperture = check_number(aperture, "aperture", low=0.0)
    max_radius = int(check_number(max_radius, "max_radius", low=0.0, high=256.0))
    levels = int(check_number(levels, "levels", low=1.0, high=64.0))
    radii = blur_levels(max_radius, levels)
    signed = np.clip(aperture * (disp - focus), -max_radius, max_radius)
    # Nearest discrete radius, keeping the sign so the layers in front of and behind focus stay apart.
    level_index = np.abs(np.abs(signed)[..., None] - radii).argmin(axis=-1)
    layer_id = np.where(signed < 0, -level_index, level_index)
    image = rgb.astype(np.float32)
    composite = image.copy()  # shows through only where layer coverage falls short of 1
    for layer in np.unique(layer_id):  # ascending: far (negative) to near (positive)
        mask = (layer_id == layer).astype(np.float32)[..., None]
        # Premultiplied colour and coverage blurred together in one 4-channel pass; "over" compositing
        # of the normalised layer colour is then simply premultiplied + (1 - coverage) * below.
        blurred = _blur(np.concatenate([image * mask, mask], axis=2), int(radii[abs(layer)]))
        composite *= 1.0 - np.clip(blurred[..., 3:], 0.0, 1.0)
        composite += blurred[..., :3]
    return _to_uint8(composite)


# ----------------------------------------------------------------------------------------------------------
# Stereo by depth-image-based rendering
# ----------------------------------------------------------------------------------------------------------


def stereo_shift(disp: np.ndarray, baseline_px: float, convergence: float) -> np.ndarray:
    """Horizontal parallax (pixels) of the synthesised right view: ``baseline_px * (disp - convergence)``.

    A point moves LEFT by this amount in the right view, so pixels nearer than ``convergence`` pop out
    of the screen and farther ones sit behind it.
    """
    return (baseline_px * (disp - convergence)).astype(np.float32)


def _nearest_valid_index(valid: np.ndarray, from_left: bool) -> np.ndarray:
    """Per pixel, column of the nearest valid pixel in its row on one side (-1 / W when none)."""
    width = valid.shape[1]
    columns = np.broadcast_to(np.arange(width), valid.shape)
    if from_left:
        return np.maximum.accumulate(np.where(valid, columns, -1), axis=1)
    flipped = np.where(valid, columns, width)[:, ::-1]
    return np.minimum.accumulate(flipped, axis=1)[:, ::-1]


def _fill_holes_from_background(image: np.ndarray, depth_order: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill each hole with the nearest valid pixel in its row on the farther (lower-disparity) side."""
    height, width = valid.shape
    left = _nearest_valid_index(valid, from_left=True)
    right = _nearest_valid_index(valid, from_left=False)
    rows = np.broadcast_to(np.arange(height)[:, None], valid.shape)
    has_left, has_right = left >= 0, right < width
    left_disp = np.where(has_left, depth_order[rows, np.clip(left, 0, width - 1)], np.inf)
    right_disp = np.where(has_right, depth_order[rows, np.clip(right, 0, width - 1)], np.inf)
    source = np.where(left_disp <= right_disp, left, right)
    fillable = ~valid & (has_left | has_right)
    filled = image.copy()
    filled[fillable] = image[rows[fillable], source[fillable]]
    return filled


def render_view(rgb: np.ndarray, disp: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Forward-warp ``rgb`` by ``x -> x - shift`` with z-ordering (near wins) and background hole filling."""
    height, width = disp.shape
    target_x = np.rint(np.arange(width)[None, :] - shift).astype(np.int64)
    target = (np.arange(height)[:, None] * width + target_x).ravel()
    sources = np.flatnonzero(((target_x >= 0) & (target_x < width)).ravel())
    # Visit near to far and keep the first writer per target pixel: the nearest pixel wins.
    near_first = sources[np.argsort(-disp.ravel()[sources], kind="stable")]
    _, first = np.unique(target[near_first], return_index=True)
    winners = near_first[first]
    warped = np.zeros((height * width, 3), dtype=np.uint8)
    warped_disp = np.full(height * width, -1.0, dtype=np.float32)
    warped[target[winners]] = rgb.reshape(-1, 3)[winners]
    warped_disp[target[winners]] = disp.ravel()[winners]
    warped_disp = warped_disp.reshape(height, width)
    return _fill_holes_from_background(warped.reshape(height, width, 3), warped_disp, warped_disp >= 0)


def stereo(
    rgb: np.ndarray,
    disp: np.ndarray,
    baseline_px: float,
    mode: StereoMode = "sbs",
    convergence: float = 0.5,
) -> np.ndarray:
    """Stereo pair from one frame plus disparity; the input frame is the LEFT view.

    The right view is rendered by shifting every pixel left by ``baseline_px * (disp - convergence)``
    pixels (see :func:`stereo_shift`), so parallax is proportional to inverse depth.

    ``mode``: ``"sbs"`` -> ``[H, 2W, 3]`` (left | right); ``"anaglyph"`` -> red-cyan ``[H, W, 3]`` (red
    from the left view, green and blue from the right); ``"left-right"`` -> ``[2, H, W, 3]`` (both
    views stacked, for writing two streams).
    """
    rgb, disp = _check_frame(rgb, disp)
    baseline_px = check_number(baseline_px, "baseline_px", low=-1024.0, high=1024.0)
    convergence = check_number(convergence, "convergence", low=0.0, high=1.0)
    if mode not in ("sbs", "anaglyph", "left-right"):
        raise InputError(f"stereo mode must be 'sbs', 'anaglyph' or 'left-right', got {mode!r}")
    right = render_view(rgb, disp, stereo_shift(disp, baseline_px, convergence))
    if mode == "sbs":
        return np.concatenate([rgb, right], axis=1)
    if mode == "anaglyph":
        return np.dstack([rgb[..., 0], right[..., 1], right[..., 2]])
    return np.stack([rgb, right])


# ----------------------------------------------------------------------------------------------------------
# Synthetic scene and documentation samples
# ----------------------------------------------------------------------------------------------------------


def synthetic_scene(height: int = 192, width: int = 288) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic test scene with known disparity: far wall, receding floor, a box and a near ball.

    Returns ``(rgb uint8 [H, W, 3], disp float32 [H, W])``.
    """
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    checker = ((rows // 12 + cols // 12) % 2).astype(np.float32)
    # Far wall: blue-grey checkerboard at disparity 0.1.
    rgb = np.stack([90 + 40 * checker, 110 + 40 * checker, 150 + 50 * checker], axis=-1)
    disp = np.full((height, width), 0.1, dtype=np.float32)
    # Floor below the horizon: disparity grows linearly from the wall's 0.1 to 0.7 at the bottom row.
    horizon = int(height * 0.55)
    floor = rows >= horizon
    t = (rows - horizon) / max(height - 1 - horizon, 1)
    disp[floor] = (0.1 + 0.6 * t)[floor]
    stripes = np.floor(cols / 16 + (rows - horizon) / 10) % 2
    floor_rgb = np.stack([150 + 50 * stripes, 120 + 30 * stripes, 80 + 10 * stripes], axis=-1)
    rgb[floor] = floor_rgb[floor]
    # A green striped box standing at disparity 0.4.
    box = (rows > height * 0.3) & (rows < height * 0.75) & (cols > width * 0.1) & (cols < width * 0.32)
    disp[box] = 0.4
    rgb[box] = np.stack([40 + 0 * cols, 150 + 60 * (cols // 6 % 2), 60 + 0 * cols], axis=-1)[box]
    # A shaded red ball nearest to the camera (disparity 0.8 at its rim to 0.95 at its centre).
    cy, cx, radius = height * 0.58, width * 0.64, height * 0.26
    r2 = ((rows - cy) ** 2 + (cols - cx) ** 2) / radius**2
    ball = r2 < 1.0
    bulge = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
    disp[ball] = (0.8 + 0.15 * bulge)[ball]
    shade = 0.35 + 0.65 * bulge
    dots = ((rows // 8 + cols // 8) % 2) * 25
    rgb[ball] = np.stack([230 * shade, 60 * shade + dots, 50 * shade], axis=-1)[ball]
    return _to_uint8(rgb), disp
