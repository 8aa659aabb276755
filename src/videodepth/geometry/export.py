"""Files a geometry run adds: cameras (JSON and a COLMAP text model) and a fused point cloud.

``<name>_cameras.json`` holds ``{"frames": [{"index": i, "shot": s, "K": 3x3, "distortion": [k1,
k2, p1, p2, k3], "c2w": 4x4}, ...]}`` in the OpenCV camera convention (x right, y down, z forward),
intrinsics for the depth outputs' size, the lens's distortion in OpenCV's order (only k1 is
estimated) and poses in the reconstruction's units. ``<name>_colmap/`` holds the same cameras and the
sparse points as COLMAP's text model (cameras.txt, images.txt, points3D.txt). A video of several
shots has one reconstruction (world, units, camera) per shot: the JSON numbers its frames' shots
from 1, and the COLMAP model and the point cloud are written per shot (``<name>_colmap/shot_001/``,
``<name>_points_shot001.ply``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from videodepth.geometry.tracking import Track, camera_rays
from videodepth.io.atomic import atomic_dir, atomic_file


def geometry_output_path(out_dir: Path, stem: str, kind: str, shot: int | None = None) -> Path:
    """Where a geometry output goes; ``shot`` (from 1) names a per-shot point cloud."""
    ply = f"{stem}_points.ply" if shot is None else f"{stem}_points_shot{shot:03d}.ply"
    names = {"cameras": f"{stem}_cameras.json", "ply": ply, "conf": f"{stem}_conf"}
    return Path(out_dir) / names[kind]


def cameras_document(
    shots: list[tuple[int, range, Track]],
    size: tuple[int, int],
    output_ranges: list[tuple[float, float]] | None = None,
) -> dict:
    """The registered frames of each (shot number, frame range, track), with video-wide indices.

    ``output_ranges`` gives, per shot, the (lowest, highest) inverse depth that the saved
    disparity's 0 and 1 stand for: each frame then carries ``inverse_depth_from_output`` =
    (scale, shift), so that the depth files and the cameras can be used together (1 / (scale * d +
    shift) is the depth along the camera's axis, in the cameras' units)."""
    frames = []
    for k, (number, shot, track) in enumerate(shots):
        K = track.K_at(size).tolist()
        # OpenCV's order (k1, k2, p1, p2, k3): the reconstruction's one radial term is k1
        distortion = [track.distortion, 0.0, 0.0, 0.0, 0.0]
        extra = {}
        if output_ranges is not None:
            low, high = output_ranges[k]
            extra = {"inverse_depth_from_output": [high - low, low]}
        frames += [
            {
                "index": shot.start + i,
                "shot": number,
                "K": K,
                "distortion": distortion,
                "c2w": track.c2w[i].tolist(),
                **extra,
            }
            for i in range(track.num_frames)
            if track.registered[i]
        ]
    return {"width": size[1], "height": size[0], "convention": "opencv", "frames": frames}


def write_cameras(
    out_dir: Path,
    stem: str,
    shots: list[tuple[int, range, Track]],
    size: tuple[int, int],
    per_shot: bool,
    output_ranges: list[tuple[float, float]] | None = None,
) -> list[Path]:
    """The JSON file and the COLMAP text model beside it; ``per_shot`` (a video of several shots)
    gives each shot's model its own folder, numbered as in the JSON."""
    json_path = geometry_output_path(out_dir, stem, "cameras")
    with atomic_file(json_path) as tmp:
        tmp.write_text(json.dumps(cameras_document(shots, size, output_ranges), indent=1))
    model = Path(out_dir) / f"{stem}_colmap"
    with atomic_dir(model) as tmp:
        for number, shot, track in shots:
            folder = tmp / f"shot_{number:03d}" if per_shot else tmp
            folder.mkdir(exist_ok=True)
            _write_colmap_text(folder, shot, track, size)
    return [json_path, model]


def _write_colmap_text(folder: Path, shot: range, track: Track, size: tuple[int, int]) -> None:
    K = track.K_at(size)
    (folder / "cameras.txt").write_text(
        "# CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
        # OPENCV: fx fy cx cy k1 k2 p1 p2, the lens's one radial term as k1 (COLMAP's distortion
        # model is OpenCV's, so any COLMAP reader undistorts these frames as tracking saw them)
        f"1 OPENCV {size[1]} {size[0]} {K[0, 0]:.6f} {K[1, 1]:.6f} {K[0, 2]:.6f} {K[1, 2]:.6f} "
        f"{track.distortion:.8f} 0 0 0\n"
    )
    lines = [
        "# IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME (world-to-camera)",
        "# POINTS2D are not exported",
    ]
    for i in np.flatnonzero(track.registered):
        w2c = np.linalg.inv(track.c2w[i])
        qw, qx, qy, qz = _quaternion(w2c[:3, :3])
        tx, ty, tz = w2c[:3, 3]
        index = shot.start + i  # video-wide, so image names match the depth outputs' frames
        lines += [
            f"{index + 1} {qw:.9f} {qx:.9f} {qy:.9f} {qz:.9f} {tx:.9f} {ty:.9f} {tz:.9f} 1 {index:06d}.png",
            "",
        ]
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    points = ["# POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] (tracks are not exported)"]
    for k, (x, y, z, r, g, b) in enumerate(track.points):
        points.append(f"{k + 1} {x:.6f} {y:.6f} {z:.6f} {int(r)} {int(g)} {int(b)} 0")
    (folder / "points3D.txt").write_text("\n".join(points) + "\n")


def _quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(w, x, y, z) of a rotation matrix, w >= 0 (Shepperd's method via the largest diagonal term)."""
    m = rotation
    trace = np.trace(m)
    candidates = [trace, m[0, 0], m[1, 1], m[2, 2]]
    k = int(np.argmax(candidates))
    if k == 0:
        s = 2 * np.sqrt(1 + trace)
        q = (0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s)
    elif k == 1:
        s = 2 * np.sqrt(1 + m[0, 0] - m[1, 1] - m[2, 2])
        q = ((m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s)
    elif k == 2:
        s = 2 * np.sqrt(1 + m[1, 1] - m[0, 0] - m[2, 2])
        q = ((m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s)
    else:
        s = 2 * np.sqrt(1 + m[2, 2] - m[0, 0] - m[1, 1])
        q = ((m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s)
    return q if q[0] >= 0 else tuple(-v for v in q)


MAX_CLOUD_POINTS = 2_000_000  # of a video's point clouds, all shots together


class PointCloudBuilder:
    """A coloured, confidence-filtered world point cloud from fused frames, capped at
    ``max_points`` in all (each frame contributes an equal share), so memory stays bounded."""

    def __init__(
        self,
        track: Track,
        size: tuple[int, int],
        max_points: int = MAX_CLOUD_POINTS,
        min_confidence: float = 0.5,
        seed: int = 0,
    ) -> None:
        self.track, self.size = track, size
        self.per_frame = max(1, max_points // max(track.num_frames, 1))
        self.min_confidence = min_confidence
        self.K = track.K_at(size)
        self.rng = np.random.default_rng(seed)
        self.points: list[np.ndarray] = []
        self.colours: list[np.ndarray] = []

    def add(self, index: int, inverse_depth: np.ndarray, confidence: np.ndarray, rgb: np.ndarray) -> None:
        if not self.track.registered[index]:
            return
        rows, cols = np.nonzero(confidence >= self.min_confidence)
        if len(rows) == 0:
            return
        if len(rows) > self.per_frame:
            pick = self.rng.choice(len(rows), self.per_frame, replace=False)
            rows, cols = rows[pick], cols[pick]
        depth = 1.0 / np.maximum(inverse_depth[rows, cols], 1e-9)
        pixels = np.stack([cols + 0.5, rows + 0.5], axis=1).astype(np.float64)
        camera = camera_rays(self.K, self.track.distortion, pixels) * depth[:, None]
        c2w = self.track.c2w[index]
        self.points.append((camera @ c2w[:3, :3].T + c2w[:3, 3]).astype(np.float32))
        self.colours.append(rgb[rows, cols].astype(np.uint8))

    def write(self, path: Path) -> Path:
        from videodepth.apps.pointcloud import write_ply

        points = np.concatenate(self.points) if self.points else np.zeros((0, 3), np.float32)
        colours = np.concatenate(self.colours) if self.colours else np.zeros((0, 3), np.uint8)
        write_ply(path, points, colours)
        return Path(path)
