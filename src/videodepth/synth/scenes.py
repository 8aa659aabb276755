"""Procedural scene families: geometry, object motion and camera motion, all from one seed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from videodepth.synth.geometry import Primitive, terrain_height
from videodepth.synth.raycast import Scene
from videodepth.synth.textures import make_texture, plain_texture, sky_colours

FAMILIES = ("indoor", "street", "terrain", "tabletop", "people", "structures")
CAMERA_MOTIONS = ("static", "pan", "handheld", "forward", "orbit", "zoom")


@dataclass
class SceneConfig:
    """What to render. ``camera_motion=None`` lets the family pick one from the seed."""

    family: str = "indoor"
    camera_motion: str | None = None
    fps: float = 24.0
    hfov_deg: tuple[float, float] = (50.0, 80.0)  # horizontal field of view range
    # Probability that the camera pitches up by 10-50 degrees from the family's framing. Every
    # family frames its scene level or looking down, so without this the ground fills the lower
    # part of nearly every frame. Drawn from its own generator: 0 renders exactly as before.
    look_up: float = 0.0


# ----------------------------------------------------------------------------- pose helpers


def rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def make_pose(rotation: np.ndarray, translation) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = translation
    return pose


def look_at(eye: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """OpenCV camera-to-world pose (x right, y down, z forward) in a y-up world."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    if np.linalg.norm(right) < 1e-6:
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward], axis=1) @ rotation_z(roll)
    return make_pose(rotation, eye)


def static_poses(num_frames: int, pose: np.ndarray) -> np.ndarray:
    return np.repeat(pose[None], num_frames, axis=0)


def _smooth_noise(rng: np.random.Generator, times: np.ndarray, dims: int, freq: float) -> np.ndarray:
    """Sum of a few random sinusoids per dimension: smooth, bounded in [-1, 1]."""
    out = np.zeros((len(times), dims))
    for k in range(3):
        f = freq * (k + 1) * rng.uniform(0.6, 1.4, dims)
        out += np.sin(2 * np.pi * f * times[:, None] + rng.uniform(0, 2 * np.pi, dims)) / (k + 1)
    return out / 1.84


# ----------------------------------------------------------------------------- camera motion


def camera_path(
    rng: np.random.Generator,
    motion: str,
    num_frames: int,
    fps: float,
    eye: np.ndarray,
    target: np.ndarray,
    speed: float,
    shake: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-to-world poses [T, 4, 4] and focal multipliers [T] for one motion type."""
    times = np.arange(num_frames) / fps
    # Motion is defined per second (not per clip), so a short clip moves as much per frame as a
    # long one; the sweeps below cover their range in about four seconds.
    progress = times / 4.0
    zoom = np.ones(num_frames)
    offset = target - eye
    eyes = np.repeat(eye[None], num_frames, 0).astype(np.float64)
    targets = np.repeat(target[None], num_frames, 0).astype(np.float64)
    if motion == "pan":
        sweep = np.deg2rad(rng.uniform(15, 50)) * rng.choice([-1, 1])
        angles = sweep * (progress - 0.5)
        targets = eye + np.stack([rotation_y(a) @ offset for a in angles])
    elif motion == "forward":
        heading = offset * [1, 0, 1]
        heading /= np.linalg.norm(heading)
        eyes = eye + times[:, None] * speed * heading
        yaw = 0.08 * _smooth_noise(rng, times, 1, 0.1)[:, 0]
        targets = eyes + np.stack([rotation_y(a) @ offset for a in yaw])
    elif motion == "orbit":
        arc = np.deg2rad(rng.uniform(20, 70)) * rng.choice([-1, 1])
        angles = arc * (progress - 0.5)
        eyes = target - np.stack([rotation_y(a) @ offset for a in angles])
    elif motion == "zoom":
        phase = 0.0 if rng.random() < 0.5 else np.pi  # zoom in first, or out first
        zoom = 1 + rng.uniform(0.3, 0.7) * (0.5 - 0.5 * np.cos(np.pi * progress + phase))
    amplitude = shake * (4.0 if motion == "handheld" else 1.0)
    if motion != "static":
        eyes = eyes + amplitude * _smooth_noise(rng, times, 3, 0.7)
        targets = targets + amplitude * 2 * _smooth_noise(rng, times, 3, 0.5)
    roll = 0.01 * (4 if motion == "handheld" else 1) * _smooth_noise(rng, times, 1, 0.3)[:, 0]
    if motion == "static":
        roll[:] = 0
    poses = np.stack([look_at(e, t, r) for e, t, r in zip(eyes, targets, roll, strict=True)])
    return poses, zoom


# ----------------------------------------------------------------------------- object helpers


class Builder:
    """Accumulates primitives for one scene."""

    def __init__(self, rng: np.random.Generator, num_frames: int, fps: float):
        self.rng = rng
        self.num_frames = num_frames
        self.fps = fps
        self.times = np.arange(num_frames) / fps
        self.primitives: list[Primitive] = []

    def texture(self, photo_share: float = 0.6) -> np.ndarray:
        return make_texture(self.rng, photo_share=photo_share)

    def add(
        self, kind: str, size, poses: np.ndarray, texture=None, tile=1.0, moving=False, shadow=True, **kw
    ):
        if poses.ndim == 2:
            poses = static_poses(self.num_frames, poses)
        texture = self.texture() if texture is None else texture
        self.primitives.append(
            Primitive(kind, tuple(size), texture, poses, tile=tile, moving=moving, casts_shadow=shadow, **kw)
        )

    def rect(self, centre, normal, tangent, half_x, half_z, texture=None, tile=2.0, shadow=False):
        normal = np.asarray(normal, float) / np.linalg.norm(normal)
        tangent = np.asarray(tangent, float) / np.linalg.norm(tangent)
        rotation = np.stack([tangent, normal, np.cross(tangent, normal)], axis=1)
        self.add("plane", (half_x, half_z), make_pose(rotation, centre), texture, tile, shadow=shadow)

    def compound(self, parent: np.ndarray, parts: list[tuple], moving: bool, texture=None) -> None:
        """Parts (kind, size, local_pose) that follow the parent's poses [T, 4, 4]."""
        texture = self.texture() if texture is None else texture
        for kind, size, local in parts:
            poses = parent @ local if local.ndim == 2 else parent @ local
            self.add(kind, size, poses, texture, tile=0.5, moving=moving)

    def beam(self, start, end, radius: float, texture: np.ndarray) -> None:
        """A static cylinder from ``start`` to ``end`` (struts, rails, poles, cables)."""
        start, end = np.asarray(start, float), np.asarray(end, float)
        axis = end - start
        length = float(np.linalg.norm(axis))
        axis /= length
        helper = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.array([0, 0, 1.0])
        x = np.cross(axis, helper)
        x /= np.linalg.norm(x)
        rotation = np.stack([x, axis, np.cross(x, axis)], axis=1)
        self.add("cylinder", (radius, length / 2), make_pose(rotation, (start + end) / 2), texture,
                 tile=max(4 * radius, 0.1), shadow=False)  # fmt: skip

    # --- motions -------------------------------------------------------------
    def linear_path(self, start, velocity, yaw: float = 0.0, spin: float = 0.0) -> np.ndarray:
        positions = np.asarray(start, float) + self.times[:, None] * np.asarray(velocity, float)
        return np.stack(
            [make_pose(rotation_y(yaw + spin * t), p) for t, p in zip(self.times, positions, strict=True)]
        )

    def falling_path(self, start, rest_height: float, delay: float, spin: float = 0.0) -> np.ndarray:
        start = np.asarray(start, float)
        fall = np.clip(self.times - delay, 0, None)
        heights = np.maximum(start[1] - 0.5 * 9.81 * fall**2, rest_height)
        spin_t = np.minimum(fall, np.sqrt(2 * max(start[1] - rest_height, 0) / 9.81))
        return np.stack(
            [
                make_pose(rotation_x(spin * s) @ rotation_y(spin * s), [start[0], h, start[2]])
                for s, h in zip(spin_t, heights, strict=True)
            ]
        )

    def rolling_ball(self, start, velocity, radius: float) -> np.ndarray:
        velocity = np.asarray(velocity, float)
        speed = np.linalg.norm(velocity)
        axis = np.cross([0, 1, 0], velocity / max(speed, 1e-9))
        poses = []
        for t in self.times:
            angle = speed * t / radius
            poses.append(make_pose(_axis_angle(axis, angle), np.asarray(start, float) + velocity * t))
        return np.stack(poses)


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / max(np.linalg.norm(axis), 1e-9)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def add_person(b: Builder, start, velocity, ground: float = 0.0, scale: float = 1.0) -> None:
    """A walking person: torso, head, swinging legs and arms (each a rigid part)."""
    velocity = np.asarray(velocity, float)
    yaw = np.arctan2(velocity[0], velocity[2]) if np.linalg.norm(velocity) > 1e-6 else b.rng.uniform(0, 6.28)
    body = b.linear_path(np.asarray(start, float) + [0, ground, 0], velocity, yaw)
    swing = (
        0.5 * np.sin(2 * np.pi * 1.8 * b.times + b.rng.uniform(0, 6.28)) * min(np.linalg.norm(velocity), 1.0)
    )
    cloth, skin = b.texture(0.4), plain_texture(tuple(b.rng.uniform([0.4, 0.25, 0.15], [0.95, 0.75, 0.6])))
    s = scale
    b.compound(body, [("cylinder", (0.17 * s, 0.3 * s), make_pose(np.eye(3), [0, 1.2 * s, 0]))], True, cloth)
    b.compound(body, [("sphere", (0.11 * s,), make_pose(np.eye(3), [0, 1.65 * s, 0]))], True, skin)
    for side, sign in ((-1, 1), (1, -1)):
        for limb, (hip, length, radius) in {"leg": (0.9, 0.45, 0.07), "arm": (1.45, 0.32, 0.05)}.items():
            swing_sign = sign if limb == "leg" else -sign
            x = side * (0.09 if limb == "leg" else 0.23) * s
            locals_ = np.stack(
                [
                    make_pose(np.eye(3), [x, hip * s, 0])
                    @ make_pose(rotation_x(swing_sign * a), [0, 0, 0])
                    @ make_pose(np.eye(3), [0, -length * s, 0])
                    for a in swing
                ]
            )
            b.compound(
                body,
                [("cylinder", (radius * s, length * s), locals_)],
                True,
                cloth if limb == "leg" else skin,
            )


# ----------------------------------------------------------------------------- families


def _indoor(b: Builder) -> dict:
    rng = b.rng
    wx, wy, wz = rng.uniform(4, 8), rng.uniform(2.5, 3.2), rng.uniform(4, 8)
    floor_tex, wall_tex, ceiling_tex = b.texture(0.5), b.texture(0.5), b.texture(0.2)
    b.rect([0, 0, 0], [0, 1, 0], [1, 0, 0], wx / 2, wz / 2, floor_tex, tile=rng.uniform(0.5, 2))
    b.rect([0, wy, 0], [0, -1, 0], [1, 0, 0], wx / 2, wz / 2, ceiling_tex, tile=2.0)
    for sign in (-1, 1):
        b.rect([0, wy / 2, sign * wz / 2], [0, 0, -sign], [1, 0, 0], wx / 2, wy / 2, wall_tex, tile=1.5)
        b.rect([sign * wx / 2, wy / 2, 0], [-sign, 0, 0], [0, 0, 1], wz / 2, wy / 2, wall_tex, tile=1.5)
    for _ in range(int(rng.integers(3, 8))):
        _furniture(b, rng.uniform([-wx / 2 + 0.6, -wz / 2 + 0.6], [wx / 2 - 0.6, wz / 2 - 0.6]))
    for _ in range(int(rng.integers(1, 4))):  # pictures on the walls
        sign = rng.choice([-1, 1])
        size = rng.uniform([0.2, 0.2], [0.6, 0.45])
        pos = [rng.uniform(-wx / 3, wx / 3), rng.uniform(1.2, wy - 0.6), sign * (wz / 2 - 0.02)]
        b.add(
            "box",
            (size[0], size[1], 0.02),
            make_pose(np.eye(3), pos),
            b.texture(1.0),
            tile=2 * size[0],
            shadow=False,
        )
    _movers(b, floor=0.0, extent=(wx / 2 - 0.8, wz / 2 - 0.8), person_share=0.4)
    eye = np.array([rng.uniform(-wx / 4, wx / 4), rng.uniform(1.2, 1.7), rng.uniform(-wz / 2 + 0.7, -wz / 4)])
    target = np.array([rng.uniform(-wx / 4, wx / 4), rng.uniform(0.5, 1.3), rng.uniform(0, wz / 3)])
    return dict(eye=eye, target=target, speed=0.5, shake=0.01, max_depth=20.0, ambient=0.45,
                motions=("static", "pan", "handheld", "forward", "orbit", "zoom"), sky=False)  # fmt: skip


def _furniture(b: Builder, xz) -> None:
    rng = b.rng
    kind = rng.integers(6)
    yaw = rng.uniform(0, np.pi)
    base = make_pose(rotation_y(yaw), [xz[0], 0, xz[1]])
    tex = b.texture(0.5)
    if kind == 0:  # table with thin legs
        w, d, h = rng.uniform(0.6, 1.6), rng.uniform(0.5, 1.0), rng.uniform(0.45, 0.8)
        parts = [("box", (w / 2, 0.025, d / 2), make_pose(np.eye(3), [0, h, 0]))]
        parts += [("cylinder", (0.025, h / 2), make_pose(np.eye(3), [sx * (w / 2 - 0.05), h / 2, sz * (d / 2 - 0.05)]))
                  for sx in (-1, 1) for sz in (-1, 1)]  # fmt: skip
    elif kind == 1:  # cabinet / shelf
        w, d, h = rng.uniform(0.4, 1.2), rng.uniform(0.3, 0.6), rng.uniform(0.6, 2.0)
        parts = [("box", (w / 2, h / 2, d / 2), make_pose(np.eye(3), [0, h / 2, 0]))]
    elif kind == 2:  # sofa
        w = rng.uniform(1.2, 2.2)
        parts = [("box", (w / 2, 0.22, 0.45), make_pose(np.eye(3), [0, 0.22, 0])),
                 ("box", (w / 2, 0.4, 0.1), make_pose(np.eye(3), [0, 0.4, -0.4]))]  # fmt: skip
    elif kind == 3:  # floor lamp: a thin pole under a shade
        h = rng.uniform(1.2, 1.8)
        parts = [("cylinder", (0.015, h / 2), make_pose(np.eye(3), [0, h / 2, 0])),
                 ("cylinder", (0.18, 0.12), make_pose(np.eye(3), [0, h, 0]))]  # fmt: skip
    elif kind == 4:  # plant
        parts = [("cylinder", (0.15, 0.2), make_pose(np.eye(3), [0, 0.2, 0])),
                 ("sphere", (rng.uniform(0.25, 0.45),), make_pose(np.eye(3), [0, 0.75, 0]))]  # fmt: skip
    else:  # stacked boxes
        parts = []
        y = 0.0
        for _ in range(int(rng.integers(1, 4))):
            s = rng.uniform(0.15, 0.4)
            parts.append(("box", (s, s, s), make_pose(rotation_y(rng.uniform(0, 1)), [0, y + s, 0])))
            y += 2 * s
    b.compound(static_poses(b.num_frames, base), parts, False, tex)


def _movers(
    b: Builder, floor: float, extent, person_share: float, count: int | None = None, scale=1.0
) -> None:
    rng = b.rng
    n = int(rng.integers(0, 3)) if count is None else count
    for _ in range(n):
        start = np.array([rng.uniform(-extent[0], extent[0]), 0.0, rng.uniform(-extent[1], extent[1])])
        heading = rng.uniform(0, 2 * np.pi)
        direction = np.array([np.sin(heading), 0, np.cos(heading)])
        roll = rng.random()
        if roll < person_share:
            add_person(b, start, direction * rng.uniform(0.4, 1.4), ground=floor)
        elif roll < person_share + 0.3 * (1 - person_share):
            r = rng.uniform(0.08, 0.3) * scale
            b.add("sphere", (r,), b.rolling_ball(start + [0, floor + r, 0], direction * rng.uniform(0.3, 1.5) * scale, r),
                  tile=r * 2, moving=True)  # fmt: skip
        elif roll < person_share + 0.65 * (1 - person_share):
            s = rng.uniform(0.1, 0.3) * scale
            path = b.falling_path(
                start + [0, floor + rng.uniform(1.0, 2.5) * scale, 0], floor + s, rng.uniform(0, 1.5), 2.0
            )
            b.add("box", (s, s, s), path, tile=2 * s, moving=True)
        else:
            s = rng.uniform(0.1, 0.35) * scale
            path = b.linear_path(
                start + [0, floor + s, 0], direction * rng.uniform(0.2, 0.8) * scale, spin=rng.uniform(-2, 2)
            )
            b.add("box", (s, s * rng.uniform(0.5, 1.5), s), path, tile=2 * s, moving=True)


def _street(b: Builder) -> dict:
    rng = b.rng
    road = rng.uniform(6, 14)
    length = 400.0
    asphalt = b.texture(0.2)
    b.rect(
        [0, 0, length / 2 - 30],
        [0, 1, 0],
        [1, 0, 0],
        road / 2 + 40,
        length / 2,
        asphalt,
        tile=rng.uniform(1, 4),
    )
    for side in (-1, 1):
        b.add("box", (1.5, 0.08, length / 2), make_pose(np.eye(3), [side * (road / 2 + 1.5), 0.08, length / 2 - 30]),
              b.texture(0.3), tile=1.0, shadow=False)  # fmt: skip
        z = -30.0
        facade = [b.texture(0.8) for _ in range(3)]
        while z < length - 30:
            w, h, d = rng.uniform(6, 16), rng.uniform(5, 30), rng.uniform(8, 15)
            gap = rng.uniform(0, 4)
            x = side * (road / 2 + 3 + rng.uniform(0, 3) + d / 2)
            b.add("box", (d / 2, h / 2, w / 2), make_pose(np.eye(3), [x, h / 2, z + w / 2]),
                  facade[int(rng.integers(3))], tile=rng.uniform(3, 8), shadow=False)  # fmt: skip
            z += w + gap
        for z in np.arange(-20, 200, rng.uniform(10, 25)):  # poles and trees along the sidewalk
            x = side * (road / 2 + 0.6)
            if rng.random() < 0.5:
                b.add(
                    "cylinder",
                    (0.06, 3.0),
                    make_pose(np.eye(3), [x, 3.0, z]),
                    plain_texture((0.3, 0.3, 0.32)),
                )
            else:
                b.add(
                    "cylinder",
                    (0.15, 1.5),
                    make_pose(np.eye(3), [x, 1.5, z]),
                    plain_texture((0.35, 0.25, 0.15)),
                )
                b.add(
                    "sphere",
                    (rng.uniform(1.0, 2.0),),
                    make_pose(np.eye(3), [x, 3.8, z]),
                    b.texture(0.3),
                    tile=1.0,
                )
    for _ in range(int(rng.integers(2, 7))):  # cars, parked or driving
        lane = rng.choice([-1, 1]) * road / 4
        parked = rng.random() < 0.4
        start = [lane * (1.6 if parked else 1.0), 0, rng.uniform(0, 120)]
        velocity = [0, 0, 0] if parked else [0, 0, -np.sign(lane) * rng.uniform(3, 12)]
        _car(b, start, velocity, moving=not parked)
    _movers(b, floor=0.0, extent=(road / 2 + 1, 40), person_share=0.8, count=int(rng.integers(0, 4)))
    eye = np.array([rng.uniform(-road / 4, road / 4), rng.uniform(1.3, 2.0), 0.0])
    target = eye + [rng.uniform(-2, 2), -rng.uniform(0, 1.2), 20.0]
    return dict(eye=eye, target=target, speed=rng.uniform(4, 14), shake=0.01, max_depth=80.0, ambient=0.35,
                motions=("forward", "forward", "static", "pan", "handheld"), sky=True)  # fmt: skip


def _car(b: Builder, start, velocity, moving: bool) -> None:
    rng = b.rng
    path = b.linear_path(start, velocity, yaw=0.0)
    paint = plain_texture(tuple(rng.uniform(0.05, 0.9, 3)))
    length, w = rng.uniform(1.9, 2.4), rng.uniform(0.8, 1.0)
    parts = [("box", (w, 0.35, length), make_pose(np.eye(3), [0, 0.65, 0])),
             ("box", (w * 0.9, 0.3, length * 0.5), make_pose(np.eye(3), [0, 1.3, -0.2]))]  # fmt: skip
    b.compound(path, parts, moving, paint)
    wheels = [("cylinder", (0.33, 0.12), make_pose(rotation_z(np.pi / 2), [sx * w, 0.33, sz * length * 0.65]))
              for sx in (-1, 1) for sz in (-1, 1)]  # fmt: skip
    b.compound(path, wheels, moving, plain_texture((0.05, 0.05, 0.05)))


def _terrain(b: Builder) -> dict:
    rng = b.rng
    waves = []
    for k in range(4):
        amp = rng.uniform(0.5, 3.0) / (k + 1)
        freq = rng.uniform(0.01, 0.05) * (k + 1) ** 1.5
        angle = rng.uniform(0, 2 * np.pi)
        waves.append((amp, freq * np.cos(angle), freq * np.sin(angle), rng.uniform(0, 2 * np.pi)))
    params = dict(base=0.0, waves=waves, far=300.0, steps=16)
    params["slope"] = float(sum(a * np.hypot(kx, kz) for a, kx, kz, _ in waves))
    b.add("terrain", (), np.eye(4), b.texture(0.6), tile=rng.uniform(2, 6), shadow=False, terrain=params)
    ridges = [(rng.uniform(10, 40), float(rng.integers(2, 9)), rng.uniform(0, 6.28)) for _ in range(3)]
    backdrop = dict(radius=rng.uniform(400, 800), base=rng.uniform(-20, 5), ridges=ridges)
    b.add("backdrop", (), np.eye(4), b.texture(0.5), tile=60.0, shadow=False, terrain=backdrop)

    def ground(x, z):
        return float(terrain_height(params, np.array([x]), np.array([z]))[0][0])

    for _ in range(int(rng.integers(5, 25))):  # rocks and trees
        x, z = rng.uniform(-60, 60), rng.uniform(-10, 120)
        if rng.random() < 0.5:
            r = rng.uniform(0.3, 2.0)
            b.add(
                "sphere", (r,), make_pose(np.eye(3), [x, ground(x, z) + 0.3 * r, z]), b.texture(0.4), tile=r
            )
        else:
            h = rng.uniform(1.5, 4)
            b.add(
                "cylinder",
                (0.15, h / 2),
                make_pose(np.eye(3), [x, ground(x, z) + h / 2, z]),
                plain_texture((0.3, 0.2, 0.1)),
            )
            b.add(
                "sphere",
                (rng.uniform(1, 2.5),),
                make_pose(np.eye(3), [x, ground(x, z) + h + 1, z]),
                b.texture(0.3),
                tile=1.5,
            )
    eye_xz = rng.uniform([-5, -5], [5, 5])
    height = rng.choice([1.6, rng.uniform(3, 25)])
    eye = np.array([eye_xz[0], ground(*eye_xz) + height, eye_xz[1]])
    target_xz = eye_xz + [rng.uniform(-10, 10), rng.uniform(20, 40)]
    target = np.array([target_xz[0], ground(*target_xz) + rng.uniform(0, 3), target_xz[1]])
    for _ in range(int(rng.integers(0, 3))):
        x, z = target_xz + rng.uniform(-8, 8, 2)
        add_person(b, [x, 0, z], rng.uniform(-1, 1, 3) * [1, 0, 1], ground=ground(x, z))
    return dict(eye=eye, target=target, speed=rng.uniform(1, 6), shake=0.02, max_depth=80.0, ambient=0.35,
                motions=("pan", "orbit", "forward", "handheld", "static", "zoom"), sky=True)  # fmt: skip


def _tabletop(b: Builder) -> dict:
    rng = b.rng
    b.rect([0, 0, 0], [0, 1, 0], [1, 0, 0], 1.5, 1.0, b.texture(0.6), tile=rng.uniform(0.2, 0.6))
    wall_z = rng.uniform(0.8, 2.0)
    b.rect([0, 0.5, wall_z], [0, 0, -1], [1, 0, 0], 3.0, 1.5, b.texture(0.6), tile=1.0)
    b.rect([0, -0.75, 0], [0, 1, 0], [1, 0, 0], 4.0, 4.0, b.texture(0.4), tile=1.0)  # floor under the table
    for _ in range(int(rng.integers(4, 12))):
        x, z = rng.uniform(-0.6, 0.6), rng.uniform(-0.4, 0.6)
        kind = rng.integers(5)
        tex = b.texture(0.6)
        if kind == 0:  # cup / bottle
            r, h = rng.uniform(0.03, 0.06), rng.uniform(0.05, 0.15)
            b.add("cylinder", (r, h), make_pose(np.eye(3), [x, h, z]), tex, tile=0.15)
        elif kind == 1:  # fruit / ball
            r = rng.uniform(0.03, 0.08)
            b.add("sphere", (r,), make_pose(np.eye(3), [x, r, z]), tex, tile=0.1)
        elif kind == 2:  # book / box
            s = rng.uniform([0.05, 0.01, 0.05], [0.15, 0.06, 0.2])
            b.add("box", s, make_pose(rotation_y(rng.uniform(0, 3)), [x, s[1], z]), tex, tile=0.2)
        elif kind == 3:  # pencil: a thin lying cylinder
            b.add("cylinder", (0.004, 0.08), make_pose(rotation_y(rng.uniform(0, 3)) @ rotation_x(np.pi / 2), [x, 0.004, z]),
                  plain_texture(tuple(rng.uniform(0.2, 0.9, 3))), tile=0.05)  # fmt: skip
        else:  # plate
            b.add(
                "cylinder",
                (rng.uniform(0.08, 0.13), 0.008),
                make_pose(np.eye(3), [x, 0.008, z]),
                tex,
                tile=0.2,
            )
    for _ in range(int(rng.integers(1, 3))):  # movers: rolling, falling, turning
        x, z = rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.4)
        roll = rng.random()
        if roll < 0.35:
            r = rng.uniform(0.02, 0.06)
            b.add(
                "sphere",
                (r,),
                b.rolling_ball([x, r, z], rng.uniform(-0.15, 0.15, 3) * [1, 0, 1], r),
                tile=0.1,
                moving=True,
            )
        elif roll < 0.7:
            s = rng.uniform(0.02, 0.06)
            b.add(
                "box",
                (s, s, s),
                b.falling_path([x, rng.uniform(0.3, 0.6), z], s, rng.uniform(0, 1), 3.0),
                tile=0.1,
                moving=True,
            )
        else:
            s = rng.uniform([0.03, 0.03, 0.03], [0.08, 0.12, 0.08])
            b.add(
                "box",
                s,
                b.linear_path([x, s[1], z], [0, 0, 0], spin=rng.uniform(0.5, 2)),
                tile=0.15,
                moving=True,
            )
    eye = np.array([rng.uniform(-0.3, 0.3), rng.uniform(0.25, 0.6), rng.uniform(-1.0, -0.5)])
    target = np.array([rng.uniform(-0.1, 0.1), 0.03, rng.uniform(0.0, 0.2)])
    return dict(eye=eye, target=target, speed=0.1, shake=0.003, max_depth=10.0, ambient=0.45,
                motions=("orbit", "handheld", "zoom", "pan", "static", "forward"), sky=False)  # fmt: skip


def _people(b: Builder) -> dict:
    rng = b.rng
    b.rect([0, 0, 20], [0, 1, 0], [1, 0, 0], 60, 60, b.texture(0.4), tile=rng.uniform(0.5, 3))
    for side in range(4):  # surrounding facades
        angle = side * np.pi / 2
        centre = rotation_y(angle) @ [0, 0, rng.uniform(25, 45)] + [0, 0, 20]
        h = rng.uniform(6, 20)
        normal = -rotation_y(angle) @ [0, 0, 1]
        b.rect(
            centre + [0, h / 2, 0], normal, rotation_y(angle) @ [1, 0, 0], 50, h / 2, b.texture(0.8), tile=4.0
        )
    for _ in range(int(rng.integers(2, 6))):  # benches, bollards, planters
        x, z = rng.uniform(-8, 8), rng.uniform(3, 25)
        if rng.random() < 0.5:
            b.add(
                "box",
                (rng.uniform(0.6, 1.2), 0.22, 0.25),
                make_pose(rotation_y(rng.uniform(0, 3)), [x, 0.22, z]),
                tile=0.5,
            )
        else:
            b.add("cylinder", (0.1, 0.5), make_pose(np.eye(3), [x, 0.5, z]), plain_texture((0.4, 0.4, 0.42)))
    for _ in range(int(rng.integers(3, 9))):
        start = [rng.uniform(-6, 6), 0, rng.uniform(3, 18)]
        heading = rng.uniform(0, 2 * np.pi)
        add_person(b, start, np.array([np.sin(heading), 0, np.cos(heading)]) * rng.uniform(0.5, 1.6),
                   scale=rng.uniform(0.85, 1.1))  # fmt: skip
    eye = np.array([rng.uniform(-2, 2), rng.uniform(1.4, 1.8), rng.uniform(-3, 0)])
    target = np.array([rng.uniform(-2, 2), 1.0, rng.uniform(8, 14)])
    return dict(eye=eye, target=target, speed=1.2, shake=0.01, max_depth=80.0, ambient=0.4,
                motions=("static", "pan", "handheld", "forward", "orbit"), sky=True)  # fmt: skip


def _structures(b: Builder) -> dict:
    """Steel frames, towers, curved rails and trees seen from below against the sky.

    The family the others lack: most of the frame is sky, near things are thin and cross each
    other at many depths, and the camera looks up, so there is no ground-plane layout to lean on.
    """
    rng = b.rng
    b.rect([0, 0, 20], [0, 1, 0], [1, 0, 0], 80, 80, b.texture(0.4), tile=rng.uniform(1, 4))
    paint = [plain_texture(tuple(rng.uniform(0.05, 0.9, 3))) for _ in range(2)] + [b.texture(0.3)]
    anchors = [_lattice_tower(b, paint) for _ in range(int(rng.integers(1, 4)))]
    anchors += [_rail_arc(b, paint) for _ in range(int(rng.integers(1, 4)))]
    for _ in range(int(rng.integers(0, 4))):  # trees: a trunk under a cluster of leaf spheres
        x, z = rng.uniform(-15, 15), rng.uniform(5, 35)
        h = rng.uniform(3, 9)
        b.beam([x, 0, z], [x, h, z], rng.uniform(0.15, 0.4), plain_texture((0.3, 0.2, 0.1)))
        leaves = b.texture(0.3)
        for _ in range(int(rng.integers(2, 5))):
            b.add(
                "sphere",
                (rng.uniform(1, 2.5),),
                make_pose(np.eye(3), [x, h, z] + rng.uniform(-1.5, 1.5, 3)),
                leaves,
                tile=1.5,
            )
    for _ in range(int(rng.integers(0, 3))):  # poles with a cable between them
        x, z = rng.uniform(-12, 12), rng.uniform(4, 30)
        h = rng.uniform(6, 12)
        b.beam([x, 0, z], [x, h, z], 0.12, plain_texture((0.35, 0.35, 0.37)))
        anchors.append(np.array([x, h, z]))
    if len(anchors) > 1 and rng.random() < 0.7:
        b.beam(anchors[0], anchors[1], 0.03, plain_texture((0.1, 0.1, 0.1)))
    for _ in range(int(rng.integers(0, 3))):  # things in the air: balls or boxes drifting past
        start = np.array([rng.uniform(-10, 10), rng.uniform(4, 15), rng.uniform(5, 25)])
        velocity = rng.uniform(-3, 3, 3) * [1, 0.3, 1]
        size = rng.uniform(0.3, 1.2)
        kind = "sphere" if rng.random() < 0.5 else "box"
        b.add(kind, (size,) if kind == "sphere" else (size, 0.5 * size, size), b.linear_path(start, velocity, spin=1.0),
              tile=size, moving=True)  # fmt: skip
    target = anchors[int(rng.integers(len(anchors)))] + rng.uniform(-2, 2, 3)
    heading = rng.uniform(-0.8, 0.8)
    distance = rng.uniform(3, 14)
    eye = np.array(
        [target[0] - distance * np.sin(heading), rng.uniform(1.5, 4), target[2] - distance * np.cos(heading)]
    )
    return dict(eye=eye, target=target, speed=rng.uniform(1, 5), shake=0.02, max_depth=120.0, ambient=0.4,
                motions=("pan", "orbit", "forward", "handheld", "static"), sky=True,
                clouds=(float(rng.uniform(0.2, 0.7)) if rng.random() < 0.6 else 0.0, int(rng.integers(1 << 30))))  # fmt: skip


def _lattice_tower(b: Builder, paints: list[np.ndarray]) -> np.ndarray:
    """Four legs with a ring of struts at every level and some diagonal braces; returns a point
    on the tower for the camera to aim at."""
    rng = b.rng
    centre = np.array([rng.uniform(-8, 8), 0, rng.uniform(6, 25)])
    half, height, levels = rng.uniform(1, 3), rng.uniform(10, 25), int(rng.integers(3, 6))
    texture, radius = paints[int(rng.integers(3))], rng.uniform(0.1, 0.35)
    corners = [centre + [sx * half, 0, sz * half] for sx, sz in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    for c in corners:
        b.beam(c, c + [0, height, 0], radius, texture)
    for k in range(levels):
        y0, y1 = height * k / levels, height * (k + 1) / levels
        for i in range(4):
            a, c = corners[i], corners[(i + 1) % 4]
            b.beam(a + [0, y1, 0], c + [0, y1, 0], 0.7 * radius, texture)
            if rng.random() < 0.6:
                b.beam(a + [0, y0, 0], c + [0, y1, 0], 0.5 * radius, texture)
    return centre + [0, height * rng.uniform(0.5, 1.0), 0]


def _rail_arc(b: Builder, paints: list[np.ndarray]) -> np.ndarray:
    """Two parallel rails along a tilted circular arc (short straight segments); returns the
    arc's middle point."""
    rng = b.rng
    centre = np.array([rng.uniform(-10, 10), rng.uniform(6, 18), rng.uniform(8, 25)])
    radius, tilt, yaw = rng.uniform(4, 12), rng.uniform(-0.6, 0.6), rng.uniform(0, np.pi)
    plane = rotation_y(yaw) @ rotation_x(np.pi / 2 + tilt)
    texture = paints[int(rng.integers(3))]
    angles = rng.uniform(0, 2 * np.pi) + np.linspace(0, rng.uniform(1.5, 4.0), 14)
    rail = rng.uniform(0.1, 0.25)
    points = [centre + plane @ [radius * np.cos(a), 0, radius * np.sin(a)] for a in angles]
    for offset in (-0.5, 0.5):
        shift = plane @ [0, offset, 0]
        for p, q in zip(points[:-1], points[1:], strict=True):
            b.beam(p + shift, q + shift, rail, texture)
    return points[len(points) // 2]


def _look_up(eye: np.ndarray, target: np.ndarray, pitch: float) -> np.ndarray:
    """The target moved so the camera pitches up by ``pitch`` radians (capped at 70 degrees)."""
    offset = target - eye
    horizontal = np.hypot(offset[0], offset[2])
    elevation = min(np.arctan2(offset[1], horizontal) + pitch, np.deg2rad(70))
    heading = offset * [1, 0, 1] / max(horizontal, 1e-9)
    distance = np.linalg.norm(offset)
    return eye + distance * (np.cos(elevation) * heading + [0, np.sin(elevation), 0])


FAMILY_BUILDERS: dict[str, Callable[[Builder], dict]] = {
    "indoor": _indoor,
    "street": _street,
    "terrain": _terrain,
    "tabletop": _tabletop,
    "people": _people,
    "structures": _structures,
}


def build_scene(
    config: SceneConfig, seed: int, num_frames: int, width: int, height: int
) -> tuple[Scene, str]:
    """Deterministic scene and camera-motion name for (config, seed)."""
    from videodepth.errors import InputError

    if config.family not in FAMILY_BUILDERS:
        raise InputError(f"unknown scene family {config.family!r}; choose one of {', '.join(FAMILIES)}")
    if config.camera_motion is not None and config.camera_motion not in CAMERA_MOTIONS:
        raise InputError(
            f"unknown camera motion {config.camera_motion!r}; choose one of {', '.join(CAMERA_MOTIONS)}"
        )
    if not 0.0 <= config.look_up <= 1.0:
        raise InputError(f"look-up is a probability in [0, 1], got {config.look_up}")
    rng = np.random.default_rng([seed, FAMILIES.index(config.family)])
    builder = Builder(rng, num_frames, config.fps)
    layout = FAMILY_BUILDERS[config.family](builder)
    motion = config.camera_motion or str(rng.choice(layout["motions"]))
    target = layout["target"]
    if config.look_up > 0:
        tilt = np.random.default_rng([seed, FAMILIES.index(config.family), 2])
        if tilt.random() < config.look_up:
            target = _look_up(layout["eye"], target, np.deg2rad(tilt.uniform(10, 50)))
    poses, zoom = camera_path(
        rng, motion, num_frames, config.fps, layout["eye"], target, layout["speed"], layout["shake"]
    )
    hfov = np.deg2rad(rng.uniform(*config.hfov_deg))
    focal = width / 2 / np.tan(hfov / 2)
    K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
    Ks = np.repeat(K[None], num_frames, 0)
    Ks[:, 0, 0] *= zoom
    Ks[:, 1, 1] *= zoom
    sun_azimuth = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.3, 0.3) * np.arange(num_frames) / max(
        num_frames - 1, 1
    )
    sun_elevation = rng.uniform(0.4, 1.2)
    light = np.stack(
        [
            np.cos(sun_elevation) * np.cos(sun_azimuth),
            np.full(num_frames, np.sin(sun_elevation)),
            np.cos(sun_elevation) * np.sin(sun_azimuth),
        ],
        axis=1,
    ).astype(np.float32)
    horizon, zenith = sky_colours(rng)
    scene = Scene(builder.primitives, poses, Ks, light, layout["ambient"], horizon, zenith, layout["max_depth"],
                  clouds=layout.get("clouds", (0.0, 0)))  # fmt: skip
    return scene, motion
