"""Frame rendering: z-buffered ray casting, texturing, diffuse shading and soft shadows.

Per frame and per primitive only the rays inside the primitive's conservative screen-space
bounding box are cast, which keeps small objects cheap at any resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from videodepth.synth.geometry import Primitive, hit_t, surface, transform_rays

NEAR = 0.05
MAX_SHADOW_CASTERS = 8


@dataclass
class Scene:
    """Everything needed to render a clip: geometry, cameras, lights and sky."""

    primitives: list[Primitive]
    poses_c2w: np.ndarray  # float64 [T, 4, 4]
    K: np.ndarray  # float64 [T, 3, 3] (zooms change focal length over time)
    light_dirs: np.ndarray  # float32 [T, 3], unit vectors pointing towards the light
    ambient: float
    sky_horizon: np.ndarray
    sky_zenith: np.ndarray
    max_depth: float
    # Cloud layer: (cover in [0, 1], seed); cover 0 is a clear gradient sky.
    clouds: tuple[float, int] = (0.0, 0)


def _mip_pyramid(texture: np.ndarray) -> list[np.ndarray]:
    levels = [texture]
    while levels[-1].shape[0] > 4:
        t = levels[-1]
        levels.append(0.25 * (t[0::2, 0::2] + t[1::2, 0::2] + t[0::2, 1::2] + t[1::2, 1::2]))
    return levels


def _screen_box(
    centre_cam: np.ndarray, radius: float, K: np.ndarray, height: int, width: int
) -> tuple[int, int, int, int] | None:
    """Conservative pixel box of a bounding sphere, or None when it is off screen."""
    x, y, z = centre_cam
    if not np.isfinite(radius) or z - radius < NEAR:
        return (0, height, 0, width) if z + radius > NEAR or not np.isfinite(radius) else None
    zs = np.array([z - radius, z + radius])
    xs = np.concatenate([(x - radius) / zs, (x + radius) / zs])
    ys = np.concatenate([(y - radius) / zs, (y + radius) / zs])
    u0 = int(np.floor(K[0, 0] * xs.min() + K[0, 2])) - 1
    u1 = int(np.ceil(K[0, 0] * xs.max() + K[0, 2])) + 2
    v0 = int(np.floor(K[1, 1] * ys.min() + K[1, 2])) - 1
    v1 = int(np.ceil(K[1, 1] * ys.max() + K[1, 2])) + 2
    u0, u1, v0, v1 = max(u0, 0), min(u1, width), max(v0, 0), min(v1, height)
    if u0 >= u1 or v0 >= v1:
        return None
    return v0, v1, u0, u1


def camera_rays(K: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space ray directions (x, y, 1) through pixel centres, as two [H, W] arrays."""
    u = ((np.arange(width) + 0.5 - K[0, 2]) / K[0, 0]).astype(np.float32)
    v = ((np.arange(height) + 0.5 - K[1, 2]) / K[1, 1]).astype(np.float32)
    return np.broadcast_to(u[None, :], (height, width)).copy(), np.broadcast_to(
        v[:, None], (height, width)
    ).copy()


def rotate(rotation: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """rotation @ v for every row of [N, 3], column by column (fast elementwise numpy)."""
    r = rotation.astype(np.float32)
    out = np.empty_like(vectors)
    for k in range(3):
        out[:, k] = r[k, 0] * vectors[:, 0] + r[k, 1] * vectors[:, 1] + r[k, 2] * vectors[:, 2]
    return out


CLOUD_WHITE = np.array([0.95, 0.95, 0.97], np.float32)


def cloud_density(world_dirs: tuple[np.ndarray, ...], cover: float, seed: int) -> np.ndarray:
    """Clouds on a flat layer above the camera: smooth octave noise, thresholded by ``cover``.

    Rays are projected onto the layer (x / y, z / y), so clouds shrink towards the horizon like
    real ones; rays at or below the horizon see none.
    """
    x, y, z = world_dirs
    rng = np.random.default_rng([seed, 17])
    up = np.maximum(y, 1e-3)
    u, v = x / up, z / up
    noise = np.zeros_like(u)
    for octave in range(4):
        freq = 0.8 * 2**octave
        for _ in range(2):
            angle, phase = rng.uniform(0, 2 * np.pi, 2)
            noise += np.sin(freq * (np.cos(angle) * u + np.sin(angle) * v) + phase) / 2**octave
    noise = noise / 3.75  # roughly [-1, 1]
    density = np.clip((noise - (1 - 2 * cover)) * 2.5, 0, 1)
    return density * np.clip(y * 8, 0, 1)


class FrameRenderer:
    """Renders frames of one scene; keeps texture pyramids across frames."""

    def __init__(self, scene: Scene, height: int, width: int):
        self.scene = scene
        self.height, self.width = height, width
        self.pyramids = [_mip_pyramid(p.texture) for p in scene.primitives]

    def render(self, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Linear RGB float32 [H, W, 3], z-depth float32 [H, W] (inf = sky), moving mask."""
        scene, H, W = self.scene, self.height, self.width
        K = scene.K[frame]
        c2w = scene.poses_c2w[frame]
        ray_x, ray_y = camera_rays(K, H, W)
        depth = np.full((H, W), np.inf, np.float32)
        owner = np.full((H, W), -1, np.int16)
        w2c = np.linalg.inv(c2w)
        boxes = []
        for index, prim in enumerate(scene.primitives):
            pose = prim.poses[frame]
            centre_cam = (w2c @ pose[:, 3])[:3]
            box = _screen_box(centre_cam, prim.bounding_radius(), K, H, W)
            boxes.append(box)
            if box is None:
                continue
            v0, v1, u0, u1 = box
            local = np.linalg.inv(pose) @ c2w
            d = transform_rays(local[:3, :3], ray_x[v0:v1, u0:u1].ravel(), ray_y[v0:v1, u0:u1].ravel())
            t = hit_t(prim, local[:3, 3], d).reshape(v1 - v0, u1 - u0)
            block = depth[v0:v1, u0:u1]
            closer = t < block
            block[closer] = t[closer]
            owner[v0:v1, u0:u1][closer] = index
        colour = self._sky(ray_x, ray_y, c2w)
        moving = np.zeros((H, W), bool)
        casters = self._shadow_casters(frame, c2w[:3, 3])
        for index, prim in enumerate(scene.primitives):
            box = boxes[index]
            if box is None:
                continue
            v0, v1, u0, u1 = box
            rows, cols = np.nonzero(owner[v0:v1, u0:u1] == index)
            if rows.size == 0:
                continue
            rows += v0
            cols += u0
            if prim.moving:
                moving[rows, cols] = True
            rays_cam = (ray_x[rows, cols], ray_y[rows, cols])
            colour[rows, cols] = self._shade(index, prim, frame, c2w, rays_cam, depth[rows, cols], casters, K)
        return colour, depth, moving

    def _sky(self, ray_x: np.ndarray, ray_y: np.ndarray, c2w: np.ndarray) -> np.ndarray:
        world = transform_rays(c2w[:3, :3], ray_x, ray_y)
        world_y = world[1]
        norm = np.sqrt(ray_x * ray_x + ray_y * ray_y + 1)
        elevation = np.clip(world_y / norm, 0, 1)[..., None] ** 0.6
        s = self.scene
        sky = s.sky_horizon * (1 - elevation) + s.sky_zenith * elevation
        cover, seed = s.clouds
        if cover > 0:
            density = cloud_density(world, cover, seed)[..., None]
            sky = sky * (1 - density) + CLOUD_WHITE * density
        return sky.astype(np.float32)

    def _shadow_casters(self, frame: int, camera: np.ndarray) -> np.ndarray:
        """Rows (x, y, z, radius, owner) of the casters nearest the camera (far shadows are tiny)."""
        rows = [
            (*p.poses[frame][:3, 3], p.bounding_radius() * (0.8 if p.kind == "box" else 1.0), index)
            for index, p in enumerate(self.scene.primitives)
            if p.casts_shadow and p.kind in ("sphere", "box", "cylinder")
        ]
        casters = np.array(rows, np.float32).reshape(-1, 5)
        distance = np.linalg.norm(casters[:, :3] - camera, axis=1) / np.maximum(casters[:, 3], 1e-3)
        return casters[np.argsort(distance)[:MAX_SHADOW_CASTERS]]

    def _shade(
        self,
        index: int,
        prim: Primitive,
        frame: int,
        c2w: np.ndarray,
        rays_cam: tuple[np.ndarray, np.ndarray],
        t: np.ndarray,
        casters: np.ndarray,
        K: np.ndarray,
    ) -> np.ndarray:
        pose = prim.poses[frame]
        local = np.linalg.inv(pose) @ c2w
        d_local = np.stack(transform_rays(local[:3, :3], *rays_cam), axis=1)
        normal_local, uv = surface(prim, local[:3, 3], d_local, t)
        normal = rotate(pose[:3, :3], normal_local)
        albedo = self._texture(index, prim, uv, t, normal_local, d_local, K)
        light = self.scene.light_dirs[frame]
        lambert = np.clip(normal[:, 0] * light[0] + normal[:, 1] * light[1] + normal[:, 2] * light[2], 0, 1)
        world_dirs = transform_rays(c2w[:3, :3], *rays_cam)
        points = np.stack([c2w[k, 3] + t * world_dirs[k] for k in range(3)], axis=1).astype(np.float32)
        shadow = _soft_shadow(points, light, casters, exclude=index)
        shading = self.scene.ambient + (1 - self.scene.ambient) * lambert * shadow
        return albedo * shading[:, None]

    def _texture(
        self,
        index: int,
        prim: Primitive,
        uv: np.ndarray,
        t: np.ndarray,
        normal_local: np.ndarray,
        d_local: np.ndarray,
        K: np.ndarray,
    ) -> np.ndarray:
        """Nearest-texel lookup at a per-pixel mip level chosen from the pixel's footprint."""
        pyramid = self.pyramids[index]
        size = pyramid[0].shape[0]
        ray_len = np.linalg.norm(d_local, axis=1)
        cosine = np.abs(np.einsum("ij,ij->i", normal_local, d_local)) / ray_len
        footprint = t * ray_len / K[0, 0] / np.maximum(cosine, 0.15) / prim.tile * size
        level = np.clip(np.floor(np.log2(np.maximum(footprint, 1e-6))), 0, len(pyramid) - 1).astype(np.int8)
        coords = uv / prim.tile
        albedo = np.empty((len(uv), 3), np.float32)
        for lv in np.unique(level):
            select = level == lv
            tex = pyramid[lv]
            n = tex.shape[0]
            iu = np.floor(coords[select, 0] * n).astype(np.int64) % n
            iv = np.floor(coords[select, 1] * n).astype(np.int64) % n
            albedo[select] = tex[iv, iu]
        return albedo


def _soft_shadow(points: np.ndarray, light: np.ndarray, casters: np.ndarray, exclude: int) -> np.ndarray:
    """Shadows from casters approximated by their bounding spheres, with a soft penumbra."""
    shadow = np.ones(len(points), np.float32)
    if len(points) == 0:
        return shadow
    centre = points.mean(axis=0)
    spread = float(np.sqrt(((points - centre) ** 2).sum(axis=1).max()))
    for cx, cy, cz, r, owner in casters:
        if int(owner) == exclude:
            continue  # an object does not shadow itself through its own bounding sphere
        caster = np.array([cx, cy, cz], np.float32)
        # Cheap rejection: the shadow line c - s * light misses the receiver's bounding sphere.
        offset = caster - centre
        along_centre = float(offset @ light)
        if np.linalg.norm(offset - along_centre * light) > spread + 1.2 * r:
            continue
        ex, ey, ez = cx - points[:, 0], cy - points[:, 1], cz - points[:, 2]
        along = ex * light[0] + ey * light[1] + ez * light[2]
        dist2 = ex * ex + ey * ey + ez * ez - along * along
        cover = np.clip((np.sqrt(np.maximum(dist2, 0)) - 0.6 * r) / (0.5 * r), 0, 1)
        shadow *= np.where(along > 0, 0.35 + 0.65 * cover, 1.0)
    return shadow
