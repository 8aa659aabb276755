"""PyTorch datasets of variable-length sub-clips, from shards or rendered on the fly.

Each item is a dict:
- ``rgb`` float32 [T, 3, H, W] in [-1, 1];
- ``disparity`` float32 [T, 1, H, W]: 1 / depth, min-max normalised to [-1, 1] over the valid
  pixels of the sub-clip (near = +1); invalid pixels are set to -1 (the far end) and must be
  masked with ``valid`` in the loss;
- ``depth`` float32 [T, 1, H, W] metres, 0 = invalid; ``valid`` bool [T, 1, H, W];
- ``K`` float32 [3, 3] (of the first frame, after crop/resize), ``K_frames`` [T, 3, 3],
  ``poses_c2w`` float32 [T, 4, 4]; ``length`` int.

Batching: T varies per item, so either use batch size 1 or :class:`SameLengthBatchSampler`,
which draws one T per batch through the dataset's ``sample_length`` hook and indexes the
dataset with ``(index, T)`` keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from videodepth.data.clip import Clip
from videodepth.data.render import render_clip
from videodepth.data.scenes import FAMILIES, SceneConfig
from videodepth.data.shards import list_shards, read_shard
from videodepth.data.synthbench import training_seed
from videodepth.errors import InputError


def normalised_disparity(depth: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Disparity in [-1, 1] over the valid pixels of the whole (sub-)clip; invalid = -1."""
    disparity = np.zeros_like(depth, dtype=np.float32)
    disparity[valid] = 1.0 / depth[valid]
    if not valid.any():
        return np.full_like(disparity, -1.0), valid
    low, high = disparity[valid].min(), disparity[valid].max()
    span = max(high - low, 1e-8)
    out = np.where(valid, 2 * (disparity - low) / span - 1, -1.0).astype(np.float32)
    return out, valid


def crop_and_resize(clip: Clip, size: tuple[int, int], rng: np.random.Generator, max_zoom: float = 1.25) -> dict:
    """Random scale (at least cover ``size``, up to ``max_zoom`` more) and random crop."""
    H, W = clip.depth.shape[1:]
    out_h, out_w = size
    scale = max(out_h / H, out_w / W) * rng.uniform(1.0, max_zoom)
    new_h, new_w = max(out_h, int(np.ceil(H * scale))), max(out_w, int(np.ceil(W * scale)))
    top, left = int(rng.integers(0, new_h - out_h + 1)), int(rng.integers(0, new_w - out_w + 1))
    sx, sy = new_w / W, new_h / H
    rgb, depth = [], []
    for i in range(clip.num_frames):
        rgb.append(cv2.resize(clip.rgb[i], (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
                   [top : top + out_h, left : left + out_w])  # fmt: skip
        # nearest keeps depth exact (no blending across occlusion edges)
        d = np.where(clip.valid[i], clip.depth[i], 0).astype(np.float32)
        depth.append(cv2.resize(d, (new_w, new_h), interpolation=cv2.INTER_NEAREST)[top : top + out_h, left : left + out_w])
    K_frames = clip.K_frames if clip.K_frames is not None else np.repeat(clip.K[None], clip.num_frames, 0)
    K_frames = K_frames.astype(np.float32).copy()
    K_frames[:, 0] *= sx
    K_frames[:, 1] *= sy
    K_frames[:, 0, 2] -= left
    K_frames[:, 1, 2] -= top
    return dict(rgb=np.stack(rgb), depth=np.stack(depth), K_frames=K_frames)


def jitter_colour(rgb: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """One random photometric change for a whole clip (uint8 [T, H, W, 3] in and out).

    Gain, contrast, saturation, per-channel white balance and gamma, each drawn within
    ``strength`` (0 = identity). The same change applies to every frame, so the clip stays
    temporally consistent; it keeps a model from keying depth on the renderer's exact colours.
    """
    if strength <= 0:
        return rgb
    x = rgb.astype(np.float32) / 255.0
    gain, contrast, saturation, gamma = np.exp(rng.uniform(-strength, strength, 4))
    balance = np.exp(rng.uniform(-strength / 2, strength / 2, 3)).astype(np.float32)
    grey = x.mean(axis=-1, keepdims=True)
    x = grey + saturation * (x - grey)
    mean = x.mean()
    x = mean + contrast * (x - mean)
    x = np.clip(x * gain * balance, 0.0, 1.0) ** gamma
    return np.round(x * 255.0).astype(np.uint8)


def to_item(rgb: np.ndarray, depth: np.ndarray, K_frames: np.ndarray, poses: np.ndarray) -> dict:
    valid = depth > 0
    disparity, _ = normalised_disparity(depth, valid)
    return {
        "rgb": torch.from_numpy(rgb).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0),
        "disparity": torch.from_numpy(disparity)[:, None],
        "depth": torch.from_numpy(depth.astype(np.float32))[:, None],
        "valid": torch.from_numpy(valid)[:, None],
        "K": torch.from_numpy(K_frames[0].copy()),
        "K_frames": torch.from_numpy(K_frames),
        "poses_c2w": torch.from_numpy(np.asarray(poses, np.float32)),
        "length": int(rgb.shape[0]),
    }


class _SubClipDataset(Dataset):
    """Shared sub-clip logic: ``ds[i]`` draws T with ``sample_length``; ``ds[(i, T)]`` fixes T."""

    def __init__(self, size: tuple[int, int], min_len: int, max_len: int, seed: int):
        if not 1 <= min_len <= max_len:
            raise InputError(f"clip length range must satisfy 1 <= min_len <= max_len, got [{min_len}, {max_len}]")
        self.size = tuple(size)
        self.min_len, self.max_len = min_len, max_len
        self.seed = seed
        self.epoch = 0
        self.sample_length: Callable[[np.random.Generator], int] = lambda rng: int(rng.integers(self.min_len, self.max_len + 1))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def _key(self, key) -> tuple[int, int | None]:
        return (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), None)


class ShardDataset(_SubClipDataset):
    """Sub-clips of pre-rendered shards (or of any sequence that ``read_shard`` can load)."""

    def __init__(self, root: str | Path | Sequence[Path], size=(320, 640), min_len=1, max_len=25, seed=0, max_zoom=1.25):
        super().__init__(size, min_len, max_len, seed)
        self.paths = list_shards(root) if isinstance(root, str | Path) else [Path(p) for p in root]
        if not self.paths:
            raise InputError(f"no shards (*.npz) found in {root}")
        self.max_zoom = max_zoom

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key) -> dict:
        index, length = self._key(key)
        rng = self._rng(index)
        length = length if length is not None else self.sample_length(rng)
        path = self.paths[index % len(self.paths)]
        total = read_shard_length(path)
        length = min(length, total)
        start = int(rng.integers(0, total - length + 1))
        clip = read_shard(path, slice(start, start + length))
        view = crop_and_resize(clip, self.size, rng, self.max_zoom)
        return to_item(view["rgb"], view["depth"], view["K_frames"], clip.poses_c2w)


def read_shard_length(path: Path) -> int:
    import json

    try:
        with np.load(path, allow_pickle=False) as data:
            return int(json.loads(bytes(data["meta"]).decode())["shape"][0])
    except Exception as error:  # any damage must name the file
        raise InputError(f"corrupt or truncated shard {path}: {type(error).__name__}: {error}") from error


class ProceduralDataset(_SubClipDataset):
    """Renders a fresh clip per item (training seeds only), at exactly the training size.

    ``label``: "fine", "realistic" or "mixed" (half and half, decided per item).
    """

    def __init__(self, num_items: int = 10000, size=(320, 640), min_len=1, max_len=25, seed=0,
                 families: Sequence[str] = FAMILIES, label: str = "fine"):  # fmt: skip
        super().__init__(size, min_len, max_len, seed)
        if label not in ("fine", "realistic", "mixed"):
            raise InputError(f"unknown label style {label!r}; choose fine, realistic or mixed")
        unknown = set(families) - set(FAMILIES)
        if unknown:
            raise InputError(f"unknown scene families: {', '.join(sorted(unknown))}")
        self.num_items, self.families, self.label = num_items, tuple(families), label

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, key) -> dict:
        index, length = self._key(key)
        rng = self._rng(index)
        length = length if length is not None else self.sample_length(rng)
        label = self.label if self.label != "mixed" else ("fine" if rng.random() < 0.5 else "realistic")
        family = self.families[index % len(self.families)]
        clip = render_clip(SceneConfig(family), training_seed(self.seed, self.epoch, index), length, *self.size, label=label)
        K_frames = clip.K_frames if clip.K_frames is not None else np.repeat(clip.K[None], length, 0)
        return to_item(clip.rgb, np.where(clip.valid, clip.depth, 0), K_frames, clip.poses_c2w)


class SameLengthBatchSampler(Sampler):
    """Yields batches of ``(index, T)`` keys sharing one T drawn by ``dataset.sample_length``."""

    def __init__(self, dataset: _SubClipDataset, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        self.dataset, self.batch_size, self.shuffle, self.seed, self.drop_last = dataset, batch_size, shuffle, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.dataset)) if self.shuffle else np.arange(len(self.dataset))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            if self.drop_last and len(chunk) < self.batch_size:
                return
            length = self.dataset.sample_length(rng)
            yield [(int(i), length) for i in chunk]
