"""Training shards: one ``.npz`` file per rendered clip, written atomically.

Contents: ``rgb_jpeg`` (all frames' JPEG bytes, concatenated) with ``rgb_offsets`` [T+1];
``depth`` float32 [T, H, W] metres (0 = invalid, stored losslessly, zlib-compressed);
``moving_mask`` bit-packed; ``K`` [3, 3]; ``K_frames`` [T, 3, 3]; ``poses_c2w`` [T, 4, 4];
``meta`` a UTF-8 JSON document (family, seed, fps, label, max_depth, camera_motion, shape).
Optional: ``confidence`` float16 [T, H, W] in [0, 1] (steps of 1/255), the per-pixel trust in a real-video label
(``training.real_labels``); shards without it read back with ``confidence=None``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np

from videodepth.data.clip import Clip
from videodepth.errors import InputError, OutputError
from videodepth.io import atomic_file

SHARD_SUFFIX = ".npz"
JPEG_QUALITY = 95


def write_shard(clip: Clip, path: str | Path) -> Path:
    path = Path(path)
    encoded = [
        cv2.imencode(".jpg", f[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1] for f in clip.rgb
    ]
    offsets = np.cumsum([0] + [len(e) for e in encoded]).astype(np.int64)
    meta = dict(family=clip.family, seed=clip.seed, fps=clip.fps, label=clip.label, max_depth=clip.max_depth,
                camera_motion=clip.camera_motion, shape=list(clip.depth.shape), label_params=clip.label_params)  # fmt: skip
    K_frames = clip.K_frames if clip.K_frames is not None else np.repeat(clip.K[None], clip.num_frames, 0)
    optional = {}
    if clip.confidence is not None:
        if clip.confidence.shape != clip.depth.shape:
            raise ValueError(f"confidence {clip.confidence.shape} and depth {clip.depth.shape} disagree")
        # in steps of 1/255: finer than any label deserves, and it halves the compressed size
        steps = np.round(np.clip(np.nan_to_num(clip.confidence), 0, 1) * 255) / 255
        optional["confidence"] = steps.astype(np.float16)
    try:
        with atomic_file(path) as temporary, open(temporary, "wb") as handle:
            np.savez_compressed(
                handle,
                **optional,
                rgb_jpeg=np.concatenate(encoded).ravel(),
                rgb_offsets=offsets,
                depth=np.where(clip.valid, clip.depth, 0).astype(np.float32),
                moving_mask=np.packbits(clip.moving_mask, axis=None),
                K=clip.K.astype(np.float32),
                K_frames=K_frames.astype(np.float32),
                poses_c2w=clip.poses_c2w.astype(np.float32),
                meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
            )
    except OSError as error:  # atomic_file has already removed the partial file
        raise OutputError(f"cannot write shard {path}: {error.strerror or error}") from None
    return path


def read_shard(path: str | Path, frames: slice | None = None) -> Clip:
    """Load a shard (optionally only ``frames``); a damaged file raises InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"shard not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            T, H, W = meta["shape"]
            select = range(T)[frames] if frames is not None else range(T)
            offsets = data["rgb_offsets"]
            jpeg = data["rgb_jpeg"]
            rgb = np.stack([_decode(jpeg[offsets[i] : offsets[i + 1]], path) for i in select])
            depth = data["depth"][select.start : select.stop : select.step]
            moving = np.unpackbits(data["moving_mask"], count=T * H * W).reshape(T, H, W).astype(bool)
            idx = list(select)
            confidence = (data["confidence"][select.start : select.stop : select.step].astype(np.float32)
                          if "confidence" in data.files else None)  # fmt: skip
            clip = Clip(
                rgb=rgb,
                depth=depth,
                valid=depth > 0,
                K=data["K"],
                poses_c2w=data["poses_c2w"][idx],
                moving_mask=moving[idx],
                family=meta["family"],
                seed=int(meta["seed"]),
                fps=float(meta["fps"]),
                label=meta["label"],
                max_depth=float(meta["max_depth"]),
                K_frames=data["K_frames"][idx],
                camera_motion=meta.get("camera_motion", ""),
                label_params=meta.get("label_params", {}),
                confidence=confidence,
            )
    except (zipfile.BadZipFile, EOFError, KeyError, ValueError, OSError, json.JSONDecodeError) as error:
        raise InputError(f"corrupt or truncated shard {path}: {type(error).__name__}: {error}") from error
    if clip.rgb.shape[:3] != clip.depth.shape:
        raise InputError(f"corrupt shard {path}: rgb {clip.rgb.shape} and depth {clip.depth.shape} disagree")
    if clip.confidence is not None and clip.confidence.shape != clip.depth.shape:
        raise InputError(
            f"corrupt shard {path}: confidence {clip.confidence.shape} and depth {clip.depth.shape} disagree"
        )
    return clip


def _decode(buffer: np.ndarray, path: Path) -> np.ndarray:
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"undecodable JPEG frame in {path.name}")
    return image[..., ::-1]


def list_shards(root: str | Path) -> list[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError(f"shard folder not found: {root}")
    return sorted(p for p in root.rglob(f"*{SHARD_SUFFIX}") if not p.name.startswith("."))
