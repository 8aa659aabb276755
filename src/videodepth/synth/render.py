"""``render_clip``: a scene family and a seed in, a :class:`Clip` with exact geometry out.

The camera image goes through a small photographic pipeline (exposure and white-balance drift,
motion blur along the camera-induced image motion, gamma, sensor noise, JPEG artefacts); the
geometry (depth, poses, intrinsics, moving mask) is never touched by it.
"""

from __future__ import annotations

import cv2
import numpy as np

from videodepth.data.clip import Clip
from videodepth.errors import InputError
from videodepth.synth.degrade import realistic_depth
from videodepth.synth.raycast import FrameRenderer, Scene
from videodepth.synth.scenes import SceneConfig, build_scene

LABELS = ("fine", "realistic")


def render_clip(
    config: SceneConfig | str,
    seed: int,
    num_frames: int = 24,
    height: int = 320,
    width: int = 640,
    label: str = "fine",
    photographic: bool = True,
) -> Clip:
    """Render ``num_frames`` frames of the scene ``(config, seed)``; deterministic by seed.

    ``label="realistic"`` degrades the depth like a stereo-derived label (see ``degrade``);
    ``photographic=False`` skips the camera pipeline (useful for exact-colour tests).
    """
    config = SceneConfig(family=config) if isinstance(config, str) else config
    if label not in LABELS:
        raise InputError(f"unknown label style {label!r}; choose 'fine' or 'realistic'")
    if num_frames < 1 or height < 8 or width < 8:
        raise InputError(
            f"clip size must be at least 1 frame of 8x8 pixels, got {num_frames}x{height}x{width}"
        )
    scene, motion = build_scene(config, seed, num_frames, width, height)
    renderer = FrameRenderer(scene, height, width)
    frames = [renderer.render(i) for i in range(num_frames)]
    linear = np.stack([f[0] for f in frames])
    depth = np.stack([f[1] for f in frames])
    moving = np.stack([f[2] for f in frames])
    valid = np.isfinite(depth)
    depth = np.where(valid, depth, 0).astype(np.float32)
    rng = np.random.default_rng([seed, 7919])
    rgb = camera_pipeline(linear, depth, scene, rng) if photographic else _to_uint8(linear ** (1 / 2.2))
    clip = Clip(
        rgb=rgb,
        depth=depth,
        valid=valid,
        K=scene.K[0].astype(np.float32),
        poses_c2w=scene.poses_c2w.astype(np.float32),
        moving_mask=moving,
        family=config.family,
        seed=seed,
        fps=config.fps,
        label="fine",
        max_depth=scene.max_depth,
        K_frames=scene.K.astype(np.float32),
        camera_motion=motion,
    )
    if label == "realistic":
        clip = realistic_depth(clip, np.random.default_rng([seed, 104729]))
    return clip


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def camera_pipeline(
    linear: np.ndarray, depth: np.ndarray, scene: Scene, rng: np.random.Generator
) -> np.ndarray:
    T = linear.shape[0]
    times = np.linspace(0, 1, T)
    exposure = rng.uniform(0.8, 1.25) * (
        1 + rng.uniform(0, 0.2) * np.sin(2 * np.pi * rng.uniform(0.2, 1) * times + rng.uniform(0, 6))
    )
    balance = rng.uniform(0.85, 1.15, 3)
    drift = rng.uniform(-0.06, 0.06, 3)
    noise_sigma = rng.uniform(0.0, 0.02)
    shutter = rng.uniform(0.0, 0.5)
    jpeg_quality = int(rng.integers(35, 96)) if rng.random() < 0.6 else None
    out = np.empty(linear.shape, np.uint8)
    for i in range(T):
        image = linear[i] * exposure[i] * (balance + drift * times[i])
        length, angle = _camera_blur(scene, depth, i, shutter)
        if length > 1.5:
            image = cv2.filter2D(image, -1, _line_kernel(length, angle), borderType=cv2.BORDER_REFLECT)
        image = np.clip(image, 0, 1) ** (1 / 2.2)
        image = image + rng.normal(0, 1, image.shape[:2] + (1,)).astype(np.float32) * noise_sigma * np.sqrt(
            image + 0.01
        )
        frame = _to_uint8(image)
        if jpeg_quality is not None:
            ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            frame = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
        out[i] = frame
    return out


def _camera_blur(scene: Scene, depth: np.ndarray, frame: int, shutter: float) -> tuple[float, float]:
    """Mean image motion (pixels, direction) at a grid of pixels, from the previous frame."""
    if frame == 0 or shutter <= 0:
        return 0.0, 0.0
    H, W = depth.shape[1:]
    ys, xs = np.mgrid[H // 8 : H : H // 4, W // 8 : W : W // 4].reshape(2, -1)
    z = depth[frame, ys, xs]
    keep = z > 0
    if not keep.any():
        z = np.full_like(z, 50.0)
        keep[:] = True
    K, K_prev = scene.K[frame], scene.K[frame - 1]
    points = np.stack(
        [(xs + 0.5 - K[0, 2]) / K[0, 0] * z, (ys + 0.5 - K[1, 2]) / K[1, 1] * z, z, np.ones_like(z)]
    )
    relative = np.linalg.inv(scene.poses_c2w[frame - 1]) @ scene.poses_c2w[frame]
    prev = relative @ points
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K_prev[0, 0] * prev[0] / prev[2] + K_prev[0, 2]
        v = K_prev[1, 1] * prev[1] / prev[2] + K_prev[1, 2]
    du, dv = (xs + 0.5 - u)[keep], (ys + 0.5 - v)[keep]
    du, dv = np.nan_to_num(du).mean(), np.nan_to_num(dv).mean()
    return float(min(np.hypot(du, dv) * shutter, 12.0)), float(np.arctan2(dv, du))


def _line_kernel(length: float, angle: float) -> np.ndarray:
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = np.cos(angle) * (length / 2), np.sin(angle) * (length / 2)
    cv2.line(
        kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1
    )
    return kernel / max(kernel.sum(), 1e-6)
