"""Analytic ray casting of rigid primitives, vectorised over rays with numpy.

Rays are given in the primitive's local frame as one origin ``o`` [3] and directions ``d``
[N, 3] that are *not* normalised: the renderer scales camera rays so that their camera-space z
is 1, which makes the ray parameter ``t`` equal to z-depth. Every ``hit_t`` returns ``t`` [N]
(``inf`` on a miss); ``surface`` returns local normals [N, 3] and texture coordinates in metres
[N, 2] for rays known to hit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EPS = 1e-4
INF = np.float32(np.inf)
Rays = tuple[np.ndarray, np.ndarray, np.ndarray]  # direction components (dx, dy, dz), each [N]


@dataclass
class Primitive:
    """A rigid shape with a per-frame object-to-world pose."""

    kind: str  # plane | box | sphere | cylinder | terrain | backdrop
    size: tuple[float, ...]  # plane (half_x, half_z); box (hx, hy, hz); sphere (r,); cylinder (r, half_h)
    texture: np.ndarray
    poses: np.ndarray  # float64 [T, 4, 4] object-to-world
    tile: float = 1.0  # metres covered by one texture repeat
    moving: bool = False
    casts_shadow: bool = True
    terrain: dict = field(default_factory=dict)  # heights for terrain / backdrop kinds

    def bounding_radius(self) -> float:
        if self.kind == "sphere":
            return self.size[0]
        if self.kind == "box":
            return float(np.linalg.norm(self.size))
        if self.kind == "cylinder":
            return float(np.hypot(self.size[0], self.size[1]))
        if self.kind == "plane":
            return float(np.hypot(self.size[0], self.size[1]))
        return np.inf


def hit_t(prim: Primitive, o: np.ndarray, d: Rays) -> np.ndarray:
    return _HIT[prim.kind](prim, o.astype(np.float32), d)


def transform_rays(rotation: np.ndarray, x: np.ndarray, y: np.ndarray) -> Rays:
    """Rotate camera rays (x, y, 1) into another frame, one component array at a time.

    Structure-of-arrays keeps numpy on its fast elementwise paths; an (N, 3) @ (3, 3) product
    is several times slower here.
    """
    r = rotation.astype(np.float32)
    return tuple(r[k, 0] * x + r[k, 1] * y + r[k, 2] for k in range(3))


def _plane_hit(prim: Primitive, o: np.ndarray, d: Rays) -> np.ndarray:
    hx, hz = prim.size
    dx, dy, dz = d
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -o[1] / dy
    hit = (t > EPS) & (np.abs(o[0] + t * dx) <= hx) & (np.abs(o[2] + t * dz) <= hz)
    return np.where(hit, t, INF).astype(np.float32)


def _box_hit(prim: Primitive, o: np.ndarray, d: Rays) -> np.ndarray:
    t_near = np.full(len(d[0]), -np.inf, np.float32)
    t_far = np.full(len(d[0]), np.inf, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis, half in enumerate(prim.size):
            inv = 1.0 / d[axis]
            t1 = (-half - o[axis]) * inv
            t2 = (half - o[axis]) * inv
            np.fmax(t_near, np.minimum(t1, t2), out=t_near)
            np.fmin(t_far, np.maximum(t1, t2), out=t_far)
    # From inside the box (a room) the far face is the visible one.
    t = np.where(t_near > EPS, t_near, t_far)
    hit = (t_far >= t_near) & (t > EPS)
    return np.where(hit, t, INF).astype(np.float32)


def _sphere_hit(prim: Primitive, o: np.ndarray, d: Rays) -> np.ndarray:
    r = prim.size[0]
    dx, dy, dz = d
    a = dx * dx + dy * dy + dz * dz
    b = o[0] * dx + o[1] * dy + o[2] * dz
    c = float(o @ o) - r * r
    disc = b * b - a * c
    root = np.sqrt(np.maximum(disc, 0))
    t = (-b - root) / a
    t = np.where(t > EPS, t, (-b + root) / a)
    return np.where((disc >= 0) & (t > EPS), t, INF).astype(np.float32)


def _cylinder_hit(prim: Primitive, o: np.ndarray, d: Rays) -> np.ndarray:
    r, hh = prim.size
    dx, dy, dz = d
    a = dx * dx + dz * dz
    b = o[0] * dx + o[2] * dz
    c = o[0] ** 2 + o[2] ** 2 - r * r
    disc = b * b - a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0))) / a
    side_ok = (disc >= 0) & (t_side > EPS) & (np.abs(o[1] + t_side * dy) <= hh)
    t_side = np.where(side_ok, t_side, INF)
    with np.errstate(divide="ignore", invalid="ignore"):
        cap_y = hh if o[1] > 0 else -hh  # only the cap facing the camera can be hit first
        t_cap = (cap_y - o[1]) / dy
    cx = o[0] + t_cap * dx
    cz = o[2] + t_cap * dz
    cap_ok = (t_cap > EPS) & (cx * cx + cz * cz <= r * r)
    t_cap = np.where(cap_ok, t_cap, INF)
    return np.minimum(t_side, t_cap).astype(np.float32)


def terrain_height(params: dict, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Height y(x, z) of a sum of sinusoids and its gradient."""
    h = np.full_like(x, params["base"])
    gx = np.zeros_like(x)
    gz = np.zeros_like(x)
    for amp, kx, kz, phase in params["waves"]:
        arg = kx * x + kz * z + phase
        h += amp * np.sin(arg)
        c = amp * np.cos(arg)
        gx += c * kx
        gz += c * kz
    return h, gx, gz


def _height_only(params: dict, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    h = np.full_like(x, params["base"])
    for amp, kx, kz, phase in params["waves"]:
        h += amp * np.sin(kx * x + kz * z + phase)
    return h


def _terrain_hit(prim: Primitive, o: np.ndarray, d: Rays) -> np.ndarray:
    """First crossing of y = h(x, z), found by conservative stepping then Newton refinement.

    A step of f / (|d_y| + L |d_xz|), with f the height above the surface and L the slope bound,
    can never jump past the first crossing, so the refinement converges to the visible surface.
    Rays only march once they are below the highest possible terrain point.
    """
    params = prim.terrain
    far = params["far"]
    top = params["base"] + sum(abs(w[0]) for w in params["waves"])
    result = np.full(len(d[0]), INF, np.float32)
    dx, dy, dz = d
    with np.errstate(divide="ignore", invalid="ignore"):
        t_enter = np.where(o[1] > top, (top - o[1]) / dy, 0.0)
    candidates = np.nonzero((dy < 0) | (o[1] <= top))[0]
    candidates = candidates[(t_enter[candidates] >= 0) & (t_enter[candidates] < far)]
    if candidates.size == 0:
        return result
    dx, dy, dz = dx[candidates], dy[candidates], dz[candidates]
    speed = np.abs(dy) + params["slope"] * np.hypot(dx, dz)
    t = t_enter[candidates].astype(np.float32)
    for _ in range(params.get("steps", 20)):
        f = o[1] + t * dy - _height_only(params, o[0] + t * dx, o[2] + t * dz)
        t = np.minimum(t + np.maximum(f, 0) / speed * 0.98 + 1e-3, far)
    for _ in range(3):
        h, gx, gz = terrain_height(params, o[0] + t * dx, o[2] + t * dz)
        f = o[1] + t * dy - h
        df = dy - gx * dx - gz * dz
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(np.abs(df) > 1e-6, f / df, 0)
        t = t - np.clip(step, -1.0, 1.0)
    residual = np.abs(o[1] + t * dy - _height_only(params, o[0] + t * dx, o[2] + t * dz))
    hit = (t > EPS) & (t < far * 0.999) & (residual < 2e-3 * np.maximum(t, 1.0))
    result[candidates] = np.where(hit, t, INF)
    return result


def _backdrop_hit(prim: Primitive, o: np.ndarray, d: Rays) -> np.ndarray:
    """Far mountain ring: a vertical cylinder of radius R whose height varies with azimuth."""
    radius = prim.terrain["radius"]
    d = np.stack(d, axis=1)
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = o[0] * d[:, 0] + o[2] * d[:, 2]
    c = o[0] ** 2 + o[2] ** 2 - radius * radius  # < 0: the camera is inside the ring
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-b + np.sqrt(np.maximum(b * b - a * c, 0))) / a
    x, y, z = o[0] + t * d[:, 0], o[1] + t * d[:, 1], o[2] + t * d[:, 2]
    hit = (t > EPS) & (y <= backdrop_profile(prim.terrain, np.arctan2(z, x)))
    return np.where(hit, t, INF).astype(np.float32)


def backdrop_profile(params: dict, azimuth: np.ndarray) -> np.ndarray:
    height = np.full_like(azimuth, params["base"])
    for amp, freq, phase in params["ridges"]:
        height += amp * np.abs(np.sin(freq * azimuth + phase))
    return height


_HIT = {
    "plane": _plane_hit,
    "box": _box_hit,
    "sphere": _sphere_hit,
    "cylinder": _cylinder_hit,
    "terrain": _terrain_hit,
    "backdrop": _backdrop_hit,
}


def surface(prim: Primitive, o: np.ndarray, d: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local normal (facing the ray) and texture coordinates in metres at the hit points."""
    p = o[None, :].astype(np.float32) + t[:, None] * d
    kind = prim.kind
    if kind == "plane":
        n = np.zeros_like(p)
        n[:, 1] = 1.0
        uv = p[:, [0, 2]]
    elif kind == "box":
        h = np.asarray(prim.size, np.float32)
        ratio = np.abs(p) / h
        axis = np.argmax(ratio, axis=1)
        n = np.zeros_like(p)
        n[np.arange(len(p)), axis] = np.sign(p[np.arange(len(p)), axis])
        u_axis = np.where(axis == 0, 2, 0)
        v_axis = np.where(axis == 1, 2, 1)
        rows = np.arange(len(p))
        uv = np.stack([p[rows, u_axis], p[rows, v_axis]], axis=1)
    elif kind == "sphere":
        r = prim.size[0]
        n = p / r
        uv = np.stack([np.arctan2(p[:, 2], p[:, 0]) * r, np.arcsin(np.clip(n[:, 1], -1, 1)) * r], axis=1)
    elif kind == "cylinder":
        r, hh = prim.size
        on_cap = np.abs(np.abs(p[:, 1]) - hh) < 1e-3 * max(hh, 1e-3)
        n = np.where(
            on_cap[:, None], np.stack([0 * p[:, 0], np.sign(p[:, 1]), 0 * p[:, 0]], 1), p * [1, 0, 1] / r
        )
        uv = np.where(on_cap[:, None], p[:, [0, 2]], np.stack([np.arctan2(p[:, 2], p[:, 0]) * r, p[:, 1]], 1))
    elif kind == "terrain":
        _, gx, gz = terrain_height(prim.terrain, p[:, 0], p[:, 2])
        n = np.stack([-gx, np.ones_like(gx), -gz], axis=1)
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        uv = p[:, [0, 2]]
    else:  # backdrop: faces the centre, tilted up a little so the sun grazes the ridges
        radial = p * [1, 0, 1]
        n = -radial / np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-6)
        n[:, 1] = 0.5
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        uv = np.stack([np.arctan2(p[:, 2], p[:, 0]) * prim.terrain["radius"], p[:, 1]], axis=1)
    # Two-sided shading: flip normals that face away from the ray.
    flip = np.einsum("ij,ij->i", n, d) > 0
    n = np.where(flip[:, None], -n, n)
    return n.astype(np.float32), uv.astype(np.float32)
