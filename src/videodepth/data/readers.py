"""Readers for benchmark sequences, all returning :class:`Sequence` (depth in metres, 0 = invalid).

Formats (detected from the path; see docs/DATA.md for each layout):
- ``rgbd``: the project's RGB-D folder (SynthBench and converted benchmarks): ``rgb/NNNNNN.png|jpg``,
  ``depth/NNNNNN.png`` 16-bit, ``meta.json`` with ``K``, ``poses_c2w``, ``depth_scale``, ``max_depth``.
- ``shard``: a training shard ``.npz`` (see ``shards``).
- ``depthcrafter``: DepthCrafter's extracted benchmark pair ``<name>_disparity.npz`` (key
  ``disparity`` or ``arr_0``, [T, 1, H, W], metres despite the name, <= 0 invalid) and
  ``<name>_rgb_left.mp4`` beside it.
- ``sintel``: ``<root>/final/<seq>/frame_NNNN.png`` with ``<root>/depth/<seq>/frame_NNNN.dpt`` and,
  if present, ``<root>/camdata_left/<seq>/frame_NNNN.cam``.
- ``scannet``: ``<scene>/color/N.jpg``, ``<scene>/depth/N.png`` (mm), ``intrinsic/``, ``pose/N.txt``.
- ``tum`` / ``bonn``: ``rgb/``, ``depth/`` (depth / 5000), ``rgb.txt``/``depth.txt``, ``groundtruth.txt``.
- ``kitti``: ``<seq>/proj_depth/groundtruth/image_02/*.png`` (depth / 256, 0 = invalid) with images in
  ``<seq>/image_02/data`` or ``<kitti_raw_root>/<date>/<seq>/image_02/data``.
- ``nyu``: ``.../rgb_NNNN.(png|jpg)`` with ``filled_NNNN.png`` (or ``depth_NNNN.png``) in mm beside it,
  one frame per sequence, cropped to the Eigen crop [45:471, 41:601] as DepthCrafter's extraction does.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

import cv2
import numpy as np

from videodepth.data.clip import Clip, Sequence, clip_to_sequence
from videodepth.errors import InputError, OutputError
from videodepth.io import atomic_dir, read_png16

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DPT_TAG = 202021.25
DEPTHCRAFTER_MAX_DEPTH = {
    "sintel": 70.0,
    "scannet": 10.0,
    "kitti": 80.0,
    "bonn": 10.0,
    "nyuv2": 10.0,
    "nyu": 10.0,
}
TUM_INTRINSICS = {  # published calibrations of the TUM RGB-D cameras; Bonn used its own Xtion
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
    "bonn": (542.822841, 542.576870, 315.593520, 237.756098),
}
NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)
NYU_CROP = (45, 471, 41, 601)  # rows, cols of the Eigen crop used by DepthCrafter's NYU extraction


# ----------------------------------------------------------------------------- low-level files


def _natural_key(path: Path) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", path.name)]


def _images(folder: Path, suffixes=IMAGE_SUFFIXES) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith(".")),
        key=_natural_key,
    )


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read image {path}")
    return image[..., ::-1].copy()


def read_dpt(path: Path) -> np.ndarray:
    """Sintel .dpt: float32 tag 202021.25, int32 width, int32 height, float32 depth (row-major)."""
    raw = Path(path).read_bytes()
    if len(raw) < 12:
        raise InputError(f"truncated .dpt file {path}")
    tag = np.frombuffer(raw, "<f4", 1, 0)[0]
    width, height = (int(v) for v in np.frombuffer(raw, "<i4", 2, 4))
    if tag != np.float32(DPT_TAG):
        raise InputError(f"{path} is not a Sintel .dpt file (tag {tag}, expected {DPT_TAG})")
    if width <= 0 or height <= 0 or len(raw) != 12 + 4 * width * height:
        raise InputError(f"truncated or malformed .dpt file {path} ({width}x{height}, {len(raw)} bytes)")
    return np.frombuffer(raw, "<f4", width * height, 12).reshape(height, width).copy()


def read_sintel_cam(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Sintel .cam: float32 tag, 3x3 float64 intrinsics, 3x4 float64 world-to-camera extrinsics."""
    raw = Path(path).read_bytes()
    if len(raw) != 4 + 8 * 21 or np.frombuffer(raw, "<f4", 1, 0)[0] != np.float32(DPT_TAG):
        raise InputError(f"malformed Sintel camera file {path}")
    K = np.frombuffer(raw, "<f8", 9, 4).reshape(3, 3)
    w2c = np.eye(4)
    w2c[:3] = np.frombuffer(raw, "<f8", 12, 4 + 72).reshape(3, 4)
    return K, np.linalg.inv(w2c)


def _first(items: list, max_frames: int | None) -> list:
    """The first ``max_frames`` items (all when None): readers open no file beyond them."""
    return items if max_frames is None else items[:max_frames]


def _stack(frames: list[np.ndarray], what: str, path: Path) -> np.ndarray:
    if not frames:
        raise InputError(f"no {what} frames found in {path}")
    if len({f.shape for f in frames}) != 1:
        raise InputError(f"{what} frames in {path} differ in size")
    return np.stack(frames)


# ----------------------------------------------------------------------------- RGB-D folder


def depth_scale_for(max_depth: float) -> float:
    """Millimetres when they fit in 16 bits, else the finest scale that keeps max_depth storable."""
    return 1000.0 if max_depth <= 65.0 else float(np.floor(65535.0 / max_depth))


def write_rgbd_folder(sequence: Sequence | Clip, path: str | Path, image_format: str = "png") -> Path:
    """Write the RGB-D folder layout atomically (a temporary folder renamed into place)."""
    sequence = clip_to_sequence(sequence) if isinstance(sequence, Clip) else sequence
    path = Path(path)
    scale = depth_scale_for(sequence.max_depth)
    try:
        with atomic_dir(path) as temporary:
            (temporary / "rgb").mkdir()
            (temporary / "depth").mkdir()
            if sequence.moving_mask is not None:
                (temporary / "mask").mkdir()
            for i in range(sequence.num_frames):
                cv2.imwrite(str(temporary / "rgb" / f"{i:06d}.{image_format}"), sequence.rgb[i][..., ::-1])
                millis = np.round(np.where(sequence.depth[i] > 0, sequence.depth[i], 0) * scale)
                cv2.imwrite(
                    str(temporary / "depth" / f"{i:06d}.png"),
                    np.where(millis > 65535, 0, millis).astype(np.uint16),
                )
                if sequence.moving_mask is not None:
                    cv2.imwrite(
                        str(temporary / "mask" / f"{i:06d}.png"),
                        sequence.moving_mask[i].astype(np.uint8) * 255,
                    )
            meta = {
                "name": sequence.name,
                "K": None if sequence.K is None else np.asarray(sequence.K, float).tolist(),
                "poses_c2w": None
                if sequence.poses_c2w is None
                else np.asarray(sequence.poses_c2w, float).tolist(),
                "depth_scale": scale,
                "max_depth": float(sequence.max_depth),
                "fps": float(sequence.fps),
                "frames": sequence.num_frames,
                "source": sequence.source,
                **{k: v for k, v in sequence.extra.items() if isinstance(v, str | int | float | list | dict)},
            }
            (temporary / "meta.json").write_text(json.dumps(meta, indent=1))
    except OSError as error:  # atomic_dir has already removed the temporary folder
        raise OutputError(f"cannot write sequence folder {path}: {error.strerror or error}") from error
    return path


def read_rgbd_folder(path: Path, max_frames: int | None = None) -> Sequence:
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read {path / 'meta.json'}: {error}") from error
    for key in ("depth_scale", "max_depth"):
        if key not in meta:
            raise InputError(f"{path / 'meta.json'} lacks {key!r}")
    rgb_files = _images(path / "rgb")
    depth_files = _images(path / "depth", (".png",))
    if len(rgb_files) != len(depth_files):
        raise InputError(f"{path}: {len(rgb_files)} rgb frames but {len(depth_files)} depth frames")
    rgb_files, depth_files = _first(rgb_files, max_frames), _first(depth_files, max_frames)
    rgb = _stack([read_rgb(p) for p in rgb_files], "rgb", path)
    depth = _stack([read_png16(p) for p in depth_files], "depth", path).astype(np.float32) / float(
        meta["depth_scale"]
    )
    mask_dir = path / "mask"
    moving = (
        np.stack(
            [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127 for p in _first(_images(mask_dir), max_frames)]
        )
        if mask_dir.is_dir()
        else None
    )
    poses = None if meta.get("poses_c2w") is None else np.asarray(meta["poses_c2w"], np.float32)
    K = None if meta.get("K") is None else np.asarray(meta["K"], np.float32)
    extra = {k: v for k, v in meta.items() if k not in ("K", "poses_c2w")}
    return Sequence(meta.get("name", path.name), rgb, depth, K, poses, float(meta["max_depth"]), float(meta.get("fps", 24.0)),
                    meta.get("source", "rgbd"), moving, extra)  # fmt: skip


# ----------------------------------------------------------------------------- benchmark formats


def read_depthcrafter(path: Path, max_frames: int | None = None) -> Sequence:
    if path.suffix == ".mp4":
        path = path.with_name(path.name.replace("_rgb_left.mp4", "_disparity.npz"))
    name = path.name.removesuffix("_disparity.npz")
    try:
        with np.load(path, allow_pickle=False) as data:
            key = "disparity" if "disparity" in data.files else "arr_0"
            depth = np.asarray(data[key], np.float32)
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise InputError(f"cannot read DepthCrafter depth file {path}: {error}") from error
    if depth.ndim == 4:
        depth = depth[:, 0]
    depth = np.where(depth > 0, depth, 0).astype(np.float32)[:max_frames]  # the npz is read whole
    video = path.with_name(f"{name}_rgb_left.mp4")
    rgb = read_video(video, len(depth))
    if rgb.shape[:3] != depth.shape:
        raise InputError(f"{video} has {rgb.shape[:3]} frames/size but {path} has {depth.shape}")
    max_depth = DEPTHCRAFTER_MAX_DEPTH.get(path.parent.name.lower(), 80.0)
    return Sequence(name, rgb, depth, None, None, max_depth, 15.0, f"depthcrafter:{path.parent.name}")


def read_video(path: Path, max_frames: int | None = None) -> np.ndarray:
    import av

    try:
        with av.open(str(path)) as container:
            decoded = itertools.islice(container.decode(video=0), max_frames)
            frames = [frame.to_ndarray(format="rgb24") for frame in decoded]
    except (OSError, av.error.FFmpegError) as error:
        raise InputError(f"cannot decode video {path}: {error}") from error
    return _stack(frames, "video", path)


def read_sintel(path: Path, max_frames: int | None = None) -> Sequence:
    root, name = path.parent.parent, path.name
    depth_dir, cam_dir = root / "depth" / name, root / "camdata_left" / name
    images = _first(_images(path, (".png",)), max_frames)
    depth = _stack([read_dpt(depth_dir / f"{p.stem}.dpt") for p in images], "depth", depth_dir)
    K, poses = None, None
    if cam_dir.is_dir():
        cams = [read_sintel_cam(cam_dir / f"{p.stem}.cam") for p in images]
        K, poses = cams[0][0].astype(np.float32), np.stack([c[1] for c in cams]).astype(np.float32)
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
    rgb = _stack([read_rgb(p) for p in images], "rgb", path)
    return Sequence(name, rgb, depth, K, poses, 70.0, 24.0, f"sintel:{path.parent.name}")


def read_scannet(path: Path, max_frames: int | None = None) -> Sequence:
    images = _first(_images(path / "color", (".jpg", ".png")), max_frames)
    depth = (
        _stack([read_png16(path / "depth" / f"{p.stem}.png") for p in images], "depth", path).astype(
            np.float32
        )
        / 1000.0
    )
    H, W = depth.shape[1:]
    K = _read_matrix(path / "intrinsic" / "intrinsic_depth.txt")
    K = None if K is None else K[:3, :3].astype(np.float32)
    rgb = []
    for p in images:
        image = read_rgb(p)
        if image.shape[:2] != (H, W):  # raw exports store colour at 1296x968: bring it to the depth grid
            image = cv2.resize(image, (W, H), interpolation=cv2.INTER_AREA)
        rgb.append(image)
    poses = [_read_matrix(path / "pose" / f"{p.stem}.txt") for p in images]
    poses_arr = (
        None
        if any(p is None or not np.isfinite(p).all() for p in poses)
        else np.stack(poses).astype(np.float32)
    )
    return Sequence(path.name, np.stack(rgb), depth, K, poses_arr, 10.0, 30.0, "scannet")


def _read_matrix(path: Path) -> np.ndarray | None:
    try:
        return np.loadtxt(path, dtype=np.float64).reshape(4, 4)
    except (OSError, ValueError):
        return None


def _read_timestamps(path: Path) -> list[tuple[float, list[str]]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            parts = line.split()
            rows.append((float(parts[0]), parts[1:]))
    return rows


def _nearest(stamps: np.ndarray, t: float, tolerance: float) -> int | None:
    i = int(np.argmin(np.abs(stamps - t)))
    return i if abs(stamps[i] - t) <= tolerance else None


def read_tum(path: Path, max_frames: int | None = None) -> Sequence:
    """TUM RGB-D / Bonn: associate rgb and depth by timestamp (or by order when no lists)."""
    is_bonn = "bonn" in path.name.lower()
    if (path / "rgb.txt").is_file() and (path / "depth.txt").is_file():
        rgb_rows, depth_rows = _read_timestamps(path / "rgb.txt"), _read_timestamps(path / "depth.txt")
        depth_stamps = np.array([t for t, _ in depth_rows])
        pairs = []
        for t, (name,) in ((t, r[:1]) for t, r in rgb_rows):
            j = _nearest(depth_stamps, t, 0.02)
            if j is not None:
                pairs.append((t, path / name, path / depth_rows[j][1][0]))
    else:
        rgbs, depths = _images(path / "rgb"), _images(path / "depth", (".png",))
        pairs = [(_stamp(r), r, d) for r, d in zip(rgbs, depths, strict=False)]
    pairs = _first(pairs, max_frames)
    rgb = _stack([read_rgb(r) for _, r, _ in pairs], "rgb", path)
    depth = _stack([read_png16(d) for _, _, d in pairs], "depth", path).astype(np.float32) / 5000.0
    camera = "bonn" if is_bonn else next((k for k in TUM_INTRINSICS if k in path.name), "freiburg3")
    fx, fy, cx, cy = TUM_INTRINSICS[camera]
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float32)
    return Sequence(path.name, rgb, depth, K, _tum_poses(path, [t for t, _, _ in pairs]), 10.0, 30.0,
                    "bonn" if is_bonn else "tum")  # fmt: skip


def _stamp(path: Path) -> float:
    try:
        return float(path.stem)
    except ValueError:
        return float("nan")


def _tum_poses(path: Path, stamps: list[float]) -> np.ndarray | None:
    """Camera-to-world poses from groundtruth.txt (tx ty tz qx qy qz qw), nearest within 20 ms."""
    gt = path / "groundtruth.txt"
    if not gt.is_file() or any(np.isnan(stamps)):
        return None
    from scipy.spatial.transform import Rotation

    rows = _read_timestamps(gt)
    times = np.array([t for t, _ in rows])
    poses = []
    for t in stamps:
        j = _nearest(times, t, 0.02)
        if j is None:
            return None
        values = np.array(rows[j][1][:7], float)
        pose = np.eye(4)
        pose[:3, :3] = Rotation.from_quat(values[3:7]).as_matrix()
        pose[:3, 3] = values[:3]
        poses.append(pose)
    return np.stack(poses).astype(np.float32)


def read_kitti(
    path: Path, max_frames: int | None = None, kitti_raw_root: str | Path | None = None
) -> Sequence:
    depth_dir = path / "proj_depth" / "groundtruth" / "image_02"
    depth_files = _first(_images(depth_dir, (".png",)), max_frames)
    candidates = [path / "image_02" / "data"]
    if kitti_raw_root is not None:
        candidates.append(Path(kitti_raw_root) / path.name[:10] / path.name / "image_02" / "data")
    image_dir = next((c for c in candidates if c.is_dir()), None)
    if image_dir is None:
        raise InputError(
            f"KITTI images for {path.name} not found (looked in {', '.join(map(str, candidates))})"
        )
    rgb = _stack([read_rgb(image_dir / p.name) for p in depth_files], "rgb", image_dir)
    depth = _stack([read_png16(p) for p in depth_files], "depth", depth_dir).astype(np.float32) / 256.0
    K = None
    calib = (Path(kitti_raw_root) / path.name[:10] if kitti_raw_root else path) / "calib_cam_to_cam.txt"
    if calib.is_file():
        for line in calib.read_text().splitlines():
            if line.startswith("P_rect_02:"):
                K = np.array(line.split()[1:], np.float32).reshape(3, 4)[:, :3]
    return Sequence(path.name, rgb, depth, K, None, 80.0, 10.0, "kitti")


def _nyu_depth_file(rgb_path: Path) -> Path | None:
    number = rgb_path.stem.removeprefix("rgb_")
    for prefix in ("filled_", "depth_", "depth_raw_"):
        candidate = rgb_path.with_name(f"{prefix}{number}.png")
        if candidate.is_file():
            return candidate
    return None


def read_nyu(path: Path, max_frames: int | None = None, crop: bool = True) -> Sequence:
    depth_path = _nyu_depth_file(path)
    if depth_path is None:
        raise InputError(f"no NYU depth (filled_/depth_ PNG) beside {path}")
    rgb, depth = read_rgb(path), read_png16(depth_path).astype(np.float32) / 1000.0
    fx, fy, cx, cy = NYU_INTRINSICS
    if crop and depth.shape == (480, 640):
        r0, r1, c0, c1 = NYU_CROP
        rgb, depth, cx, cy = rgb[r0:r1, c0:c1], depth[r0:r1, c0:c1], cx - c0, cy - r0
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float32)
    return Sequence(f"{path.parent.name}_{path.stem}", rgb[None], depth[None], K, None, 10.0, 1.0, "nyu")


# ----------------------------------------------------------------------------- dispatch


def detect_format(path: str | Path) -> str | None:
    path = Path(path)
    if path.is_file():
        if path.name.endswith("_disparity.npz"):
            return "depthcrafter"
        if path.suffix == ".npz":
            return "shard"
        if path.name.startswith("rgb_") and path.suffix.lower() in IMAGE_SUFFIXES and _nyu_depth_file(path):
            return "nyu"
        return None
    if not path.is_dir():
        return None
    if (path / "meta.json").is_file() and (path / "depth").is_dir():
        return "rgbd"
    if (path / "proj_depth" / "groundtruth" / "image_02").is_dir():
        return "kitti"
    if (path / "color").is_dir() and (path / "depth").is_dir():
        return "scannet"
    if (path / "rgb").is_dir() and (path / "depth").is_dir():
        return "bonn" if "bonn" in path.name.lower() else "tum"
    if path.parent.name in ("final", "clean") and (path.parent.parent / "depth" / path.name).is_dir():
        return "sintel"
    return None


def list_sequences(root: str | Path) -> list[Path]:
    """Every sequence under ``root`` in any supported layout (``root`` itself if it is one)."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"benchmark folder not found: {root}")
    if detect_format(root):
        return [root]
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs.sort()
        keep = []
        for d in dirs:
            if d.startswith("."):
                continue
            if detect_format(here / d):
                found.append(here / d)
            else:
                keep.append(d)
        dirs[:] = keep
        found.extend(here / f for f in sorted(files) if not f.startswith(".") and detect_format(here / f))
    return sorted(found, key=lambda p: str(p))


def read_sequence(path: str | Path, max_frames: int | None = None, **options) -> Sequence:
    """Read one sequence in any supported layout; ``options`` go to the format's reader
    (``kitti_raw_root`` for KITTI, ``crop`` for NYU)."""
    from videodepth.data.shards import read_shard

    path = Path(path)
    if not path.exists():
        raise InputError(f"sequence not found: {path}")
    kind = detect_format(path)
    readers = {
        "rgbd": read_rgbd_folder,
        "depthcrafter": read_depthcrafter,
        "sintel": read_sintel,
        "scannet": read_scannet,
        "tum": read_tum,
        "bonn": read_tum,
        "kitti": read_kitti,
        "nyu": read_nyu,
        "shard": lambda p, max_frames: clip_to_sequence(read_shard(p)),
    }
    if kind is None:
        raise InputError(f"{path} is not a sequence in any supported layout (see docs/DATA.md)")
    sequence = readers[kind](path, max_frames=max_frames, **options)
    if sequence.rgb.shape[:3] != sequence.depth.shape:
        raise InputError(f"{path}: rgb {sequence.rgb.shape[:3]} and depth {sequence.depth.shape} disagree")
    if max_frames is not None:  # poses and masks of formats that list them whole
        sequence = _truncate(sequence, max_frames)
    return sequence


def _truncate(sequence: Sequence, n: int) -> Sequence:
    import dataclasses

    return dataclasses.replace(
        sequence,
        rgb=sequence.rgb[:n],
        depth=sequence.depth[:n],
        poses_c2w=None if sequence.poses_c2w is None else sequence.poses_c2w[:n],
        moving_mask=None if sequence.moving_mask is None else sequence.moving_mask[:n],
    )
