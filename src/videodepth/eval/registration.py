"""Ground truth from a depth sensor that is not registered to the colour camera.

A Kinect's depth comes from its infrared camera, a few centimetres beside the colour camera and
with another focal length. Datasets that ship its raw frames (7-Scenes) put every depth edge
10-40 px away from the edge it belongs to in the colour frame, and the offset grows as objects
come nearer (parallax), so no image shift undoes it. A colour-aligned prediction is then
penalised at every depth edge. ``register_depth`` moves each depth pixel into the colour camera
(back-project with the depth intrinsics, translate, project with the colour intrinsics, nearest
surface wins); ``fit_depth_to_color`` finds the colour focal length and the translation from the
images alone, by bringing the depth edges onto the colour edges. Neither looks at a prediction,
so a fit cannot favour one method over another.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from videodepth.data.clip import Sequence
from videodepth.errors import InputError

EDGE_DISTANCE_CAP = 15.0  # px; a depth edge with no colour edge nearby counts this much, not more


@dataclass(frozen=True)
class DepthToColor:
    """The colour camera relative to the depth camera: same principal point, no rotation.

    ``focal`` is the colour camera's focal length in pixels; a point at ``X`` in the depth
    camera's frame is at ``X + (tx, ty, tz)`` in the colour camera's (metres).
    """

    focal: float
    tx: float
    ty: float
    tz: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.focal) and self.focal > 0):
            raise InputError(f"depth-to-colour registration: focal length must be positive, got {self.focal}")
        if not all(np.isfinite(v) and abs(v) < 1.0 for v in (self.tx, self.ty, self.tz)):
            raise InputError(
                "depth-to-colour registration: the translation is in metres between two cameras of one "
                f"sensor and must be under 1 m, got {self.tx}, {self.ty}, {self.tz}"
            )

    def describe(self) -> str:
        return f"colour focal {self.focal:.0f} px, depth-to-colour offset ({self.tx:+.3f}, {self.ty:+.3f}, {self.tz:+.3f}) m"


def parse_registration(text: str) -> DepthToColor | str:
    """``auto`` (fit on the images) or ``FOCAL,TX,TY[,TZ]``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (3, 4):
        raise InputError(f"--register-depth: expected 'auto' or FOCAL,TX,TY[,TZ], got {text!r}")
    return DepthToColor(*values)


def color_intrinsics(K_depth: np.ndarray, registration: DepthToColor) -> np.ndarray:
    K = np.array(K_depth, dtype=np.float64, copy=True)
    K[0, 0] = K[1, 1] = registration.focal
    return K


def register_depth(depth: np.ndarray, K_depth: np.ndarray, registration: DepthToColor) -> np.ndarray:
    """One depth map [H, W] (metres, 0 = invalid) as the colour camera sees it, same size.

    Pixels no depth pixel lands on stay 0, except one-pixel cracks inside a surface (the two grids
    do not match pixel for pixel).
    """
    height, width = depth.shape
    K_color = color_intrinsics(K_depth, registration)
    rows, cols = np.nonzero(depth > 0)
    z = depth[rows, cols].astype(np.float64)
    x = (cols - K_depth[0, 2]) / K_depth[0, 0] * z + registration.tx
    y = (rows - K_depth[1, 2]) / K_depth[1, 1] * z + registration.ty
    z = z + registration.tz
    in_front = z > 1e-6
    x, y, z = x[in_front], y[in_front], z[in_front]
    u = np.round(K_color[0, 0] * x / z + K_color[0, 2]).astype(np.int64)
    v = np.round(K_color[1, 1] * y / z + K_color[1, 2]).astype(np.int64)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    nearest = np.full(height * width, np.inf)
    np.minimum.at(nearest, v[inside] * width + u[inside], z[inside])  # z-buffer: the nearest surface
    out = np.where(np.isfinite(nearest), nearest, 0.0).reshape(height, width).astype(np.float32)
    return _fill_cracks(out)


def _fill_cracks(depth: np.ndarray, agree: float = 0.05) -> np.ndarray:
    """Fill one-pixel cracks inside a surface: a hole pixel whose two opposite neighbours (left
    and right, or above and below) are valid and within ``agree`` of each other takes their mean.
    Wider holes, and gaps between two surfaces (where the colour camera sees what the depth
    camera could not), stay holes: filling them would invent depth at the very edges that
    registration is for."""
    padded = np.pad(depth, 1)
    out = depth.copy()
    hole = depth == 0
    for first, second in (
        (padded[1:-1, :-2], padded[1:-1, 2:]),  # left and right
        (padded[:-2, 1:-1], padded[2:, 1:-1]),  # above and below
    ):
        near, far = np.minimum(first, second), np.maximum(first, second)
        crack = hole & (near > 0) & (far <= near * (1 + agree))
        out[crack] = 0.5 * (first[crack] + second[crack])
        hole &= ~crack
    return out


def require_intrinsics(sequence: Sequence) -> np.ndarray:
    """The depth camera's intrinsics, without which nothing can be registered."""
    if sequence.K is None:
        raise InputError(
            f"{sequence.name}: --register-depth needs the depth camera's intrinsics (K in meta.json)"
        )
    return np.asarray(sequence.K, np.float64)


def register_sequence(sequence: Sequence, registration: DepthToColor) -> Sequence:
    """The sequence with its depth in the colour camera, and K and poses the colour camera's
    (the moving mask is drawn on the colour frames, so it stays as it is)."""
    K_depth = require_intrinsics(sequence)
    depth = np.stack([register_depth(frame, K_depth, registration) for frame in sequence.depth])
    poses = sequence.poses_c2w
    if poses is not None:
        # colour camera -> depth camera is a translation by -t; then depth camera -> world.
        color_to_depth = np.eye(4)
        color_to_depth[:3, 3] = -np.array([registration.tx, registration.ty, registration.tz])
        poses = (np.asarray(poses, np.float64) @ color_to_depth).astype(np.float32)
    K = color_intrinsics(K_depth, registration).astype(np.float32)
    extra = {key: value for key, value in sequence.extra.items() if key != "K_frames"}  # the depth camera's
    return dataclasses.replace(sequence, depth=depth, K=K, poses_c2w=poses, extra=extra)


def _depth_edges(depth: np.ndarray) -> np.ndarray:
    """Depth discontinuities: neighbouring pixels more than about 10% apart, inside valid depth
    and away from the frame's border. Holes up to 4 px wide first take their farthest
    neighbour: a registration opens such gaps beside every near edge (what the depth camera could
    not see), and an edge must not vanish into the gap it opened."""
    hole = depth == 0
    farthest = cv2.dilate(depth, np.ones((5, 5), np.uint8))
    filled = np.where(hole, farthest, depth)
    log_depth = np.log(np.maximum(filled, 1e-3))
    jump = np.abs(cv2.Sobel(log_depth, cv2.CV_32F, 1, 0, ksize=3)) + np.abs(
        cv2.Sobel(log_depth, cv2.CV_32F, 0, 1, ksize=3)
    )
    inside = cv2.erode((filled > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    edges = (jump > 0.4) & inside
    border = max(4, min(depth.shape) // 24)
    edges[:border] = edges[-border:] = False
    edges[:, :border] = edges[:, -border:] = False
    return edges


def _distance_to_color_edges(rgb: np.ndarray) -> np.ndarray:
    gray = cv2.GaussianBlur(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY), (5, 5), 0)
    edges = cv2.Canny(gray, 40, 100)
    return cv2.distanceTransform((edges == 0).astype(np.uint8), cv2.DIST_L2, 5)


def edge_distance(distances: list[np.ndarray], depths: list[np.ndarray]) -> float:
    """Mean distance (px, capped) from each depth edge to the nearest colour edge."""
    pairs = zip(distances, depths, strict=True)
    values = np.concatenate(
        [np.minimum(dist[_depth_edges(depth)], EDGE_DISTANCE_CAP) for dist, depth in pairs]
    )
    return float(values.mean()) if values.size else EDGE_DISTANCE_CAP


def fit_depth_to_color(
    rgb: np.ndarray, depth: np.ndarray, K_depth: np.ndarray, num_frames: int = 8
) -> tuple[DepthToColor | None, float, float]:
    """The registration that brings depth edges onto colour edges, and the edge distance before
    and after; None when the edges do not decide one (no depth edges, or none brought nearer to
    a colour edge than they are as recorded).

    A coarse search over focal length and horizontal offset (the baseline of a depth sensor is
    horizontal), then coordinate descent over focal, tx and ty with shrinking steps, on
    ``num_frames`` frames spread over the sequence. The recorded geometry (depth focal, no
    offset) is the first candidate, so a tie keeps it.
    """
    K_depth = np.asarray(K_depth, np.float64)
    picks = np.linspace(0, len(rgb) - 1, min(num_frames, len(rgb))).round().astype(int)
    distances = [_distance_to_color_edges(rgb[i]) for i in picks]
    frames = [depth[i] for i in picks]
    before = edge_distance(distances, frames)
    if not any(_depth_edges(frame).any() for frame in frames):
        return None, before, before

    def cost(params: tuple[float, float, float]) -> float:
        registered = [register_depth(frame, K_depth, DepthToColor(*params)) for frame in frames]
        return edge_distance(distances, registered)

    focal0 = float(K_depth[0, 0])
    candidates = [(focal0, 0.0, 0.0)] + [
        (focal0 * scale, float(tx), 0.0)
        for scale in (0.85, 0.9, 0.95, 1.0, 1.05)
        for tx in np.arange(-0.06, 0.0601, 0.01)
    ]
    scored = {params: cost(params) for params in candidates}
    best = min(scored, key=scored.get)  # the first of equals: the recorded geometry on a tie
    for focal_step, offset_step in ((8.0, 0.005), (2.0, 0.001)):
        improved = True
        while improved:
            improved = False
            for axis, step in ((0, focal_step), (1, offset_step), (2, offset_step)):
                for sign in (-1, 1):
                    trial = list(best)
                    trial[axis] += sign * step
                    trial = tuple(trial)
                    if trial not in scored:
                        scored[trial] = cost(trial)
                    if scored[trial] < scored[best] - 1e-6:
                        best, improved = trial, True
    after = scored[best]
    if not after < before - 1e-6:
        return None, before, after
    return DepthToColor(*best), before, after
