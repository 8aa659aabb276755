"""The training dataset: sub-clips of shards in batches keyed by training step.

Every batch is a pure function of (seed, step, micro-step, process rank): which shards, the
clip length, the sub-clip start and the random crop are all drawn from generators seeded by
that key. Resuming at step s therefore needs no sampler or worker state, only s.

Each item of :class:`StepKeyedShards` is a dict:
- ``rgb`` float32 [T, 3, H, W] in [-1, 1];
- ``disparity`` float32 [T, 1, H, W]: 1 / depth, min-max normalised to [-1, 1] over the valid
  pixels of the sub-clip (near = +1); invalid pixels are -1 (the far end), or the nearest valid
  value where the invalid-pixel policy fills them;
- ``valid`` bool [T, 1, H, W];
- ``weight`` float32 [T, 1, H, W]: the invalid-pixel policy applied once, here: 1 where the pixel
  counts in the loss, 0 where it does not (all ones for "far"); for a shard with a per-pixel
  ``confidence`` (a real-video label, ``training.real_labels``) that weight times the confidence,
  cropped, resized and flipped exactly like the depth.

With ``real_roots`` and ``real_fraction`` > 0, each batch (one step, micro-step and rank) draws its
clips from the real-video shards with that probability and from ``roots`` otherwise; the draw
has its own generator, so ``real_fraction`` 0 gives exactly the batches of a dataset without it.

All clips of a batch share one length (:class:`StepBatchSampler`); :func:`to_item` also gives
the depth, intrinsics and poses, for datasets that need them (``synth.dataset``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import DataLoader, Dataset, Sampler

from videodepth.data.clip import Clip
from videodepth.data.shards import list_shards, read_shard
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


def crop_and_resize(
    clip: Clip, size: tuple[int, int], rng: np.random.Generator, max_zoom: float = 1.25
) -> dict:
    """Random scale (at least cover ``size``, up to ``max_zoom`` more) and random crop."""
    H, W = clip.depth.shape[1:]
    out_h, out_w = size
    scale = max(out_h / H, out_w / W) * rng.uniform(1.0, max_zoom)
    new_h, new_w = max(out_h, int(np.ceil(H * scale))), max(out_w, int(np.ceil(W * scale)))
    top, left = int(rng.integers(0, new_h - out_h + 1)), int(rng.integers(0, new_w - out_w + 1))
    sx, sy = new_w / W, new_h / H

    def crop(image: np.ndarray, interpolation: int) -> np.ndarray:
        return cv2.resize(image, (new_w, new_h), interpolation=interpolation)[
            top : top + out_h, left : left + out_w
        ]

    rgb, depth, confidence = [], [], []
    for i in range(clip.num_frames):
        rgb.append(crop(clip.rgb[i], cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR))
        # nearest keeps depth exact (no blending across occlusion edges)
        depth.append(crop(np.where(clip.valid[i], clip.depth[i], 0).astype(np.float32), cv2.INTER_NEAREST))
        if clip.confidence is not None:  # the same nearest-neighbour map as the depth, pixel for pixel
            confidence.append(
                crop(np.ascontiguousarray(clip.confidence[i], dtype=np.float32), cv2.INTER_NEAREST)
            )
    K_frames = clip.K_frames if clip.K_frames is not None else np.repeat(clip.K[None], clip.num_frames, 0)
    K_frames = K_frames.astype(np.float32).copy()
    K_frames[:, 0] *= sx
    K_frames[:, 1] *= sy
    K_frames[:, 0, 2] -= left
    K_frames[:, 1, 2] -= top
    view = dict(rgb=np.stack(rgb), depth=np.stack(depth), K_frames=K_frames)
    if clip.confidence is not None:
        view["confidence"] = np.stack(confidence)
    return view


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


def read_shard_length(path: Path) -> int:
    try:
        with np.load(path, allow_pickle=False) as data:
            return int(json.loads(bytes(data["meta"]).decode())["shape"][0])
    except Exception as error:  # any damage must name the file
        raise InputError(f"corrupt or truncated shard {path}: {type(error).__name__}: {error}") from error


def fill_invalid_nearest(disparity: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Replace invalid pixels by the value of the nearest valid pixel of the same frame.

    ``disparity`` and ``valid`` are [N, 1, H, W]; frames without any valid pixel are left as they
    are. Holes then encode as smooth continuations instead of a jump to the far end.
    """
    out = disparity.clone()
    for i in range(len(disparity)):
        mask = valid[i, 0].cpu().numpy()
        if mask.all() or not mask.any():
            continue
        _, (rows, cols) = ndimage.distance_transform_edt(~mask, return_indices=True)
        frame = disparity[i, 0].cpu().numpy()
        out[i, 0] = torch.from_numpy(np.ascontiguousarray(frame[rows, cols])).to(out)
    return out


def apply_invalid_policy(
    disparity: torch.Tensor, valid: torch.Tensor, invalid: str, label: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``TrainConfig.objective.invalid`` for one clip: (disparity, valid, weight), all [T, 1, H, W].

    "far": invalid pixels stay at -1 (the far end) and count in the loss (weight all ones);
    "fill_and_mask": nearest-valid fill, weight = valid; "by_label": "far" for a fine-label clip
    (its only holes are sky; its ``valid`` becomes all ones) and "fill_and_mask" otherwise.
    """
    mode = invalid if invalid != "by_label" else ("far" if label == "fine" else "fill_and_mask")
    if mode == "fill_and_mask":
        return fill_invalid_nearest(disparity, valid), valid, valid.float()
    if invalid == "by_label":
        valid = torch.ones_like(valid)  # the loss mask of a clip whose holes are kept as far
    return disparity, valid, torch.ones_like(disparity, dtype=torch.float32)


@dataclass(frozen=True)
class ItemKey:
    step: int
    micro: int
    rank: int
    slot: int
    length: int


class StepKeyedShards(Dataset):
    """Sub-clips of training shards, indexed by :class:`ItemKey`."""

    def __init__(
        self,
        roots: list[str | Path],
        size: tuple[int, int],
        seed: int = 0,
        max_zoom: float = 1.25,
        invalid: str = "far",
        colour_jitter: float = 0.0,
        flip: bool = False,
        vertical_flip: float = 0.0,
        real_roots: list[str | Path] | None = None,
        real_fraction: float = 0.0,
        held_out: tuple[str, ...] = (),
        match_orientation: bool = False,
    ):
        if not 0.0 <= real_fraction <= 1.0:
            raise InputError(f"real_fraction must be in [0, 1], got {real_fraction}")
        self.real_fraction = float(real_fraction)
        self.real_paths = (
            sorted({p for root in real_roots or [] for p in list_shards(root)}) if real_fraction > 0 else []
        )
        if real_fraction > 0 and not self.real_paths:
            raise InputError(
                f"no real-video shards (*.npz) found in {', '.join(map(str, real_roots or [])) or '(none given)'}"
            )
        self.paths = sorted({p for root in roots for p in list_shards(root)})
        # clips kept for evaluation must never be trained on: a shard is named after its clip
        if leaked := sorted(p.name for p in [*self.real_paths, *self.paths] if p.stem in set(held_out)):
            raise InputError(f"held-out clips in the training shards: {', '.join(leaked)} (data.held_out)")
        if not self.paths and real_fraction < 1:
            raise InputError(
                f"no training shards (*.npz) found in {', '.join(map(str, roots)) or '(none given)'}"
            )
        self.size, self.seed, self.max_zoom, self.invalid = tuple(size), seed, max_zoom, invalid
        self.colour_jitter, self.flip, self.vertical_flip = colour_jitter, flip, vertical_flip
        self.match_orientation = match_orientation
        self._lengths: dict[Path, int] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def _total(self, path: Path) -> int:
        if path not in self._lengths:
            self._lengths[path] = read_shard_length(path)
        return self._lengths[path]

    def crop_size(self, clip: Clip) -> tuple[int, int]:
        """``size``, turned upright for a portrait clip when orientations are matched."""
        height, width = clip.rgb.shape[1:3]
        if self.match_orientation and (height > width) != (self.size[0] > self.size[1]):
            return self.size[1], self.size[0]
        return self.size

    def uses_real(self, step: int, micro: int, rank: int) -> bool:
        """Whether the batch of (step, micro-step, rank) is drawn from the real-video shards: one
        draw per batch, from a generator of its own (stream 4), so it moves no other draw."""
        if self.real_fraction <= 0:
            return False
        if self.real_fraction >= 1:
            return True
        return bool(np.random.default_rng([self.seed, step, micro, rank, 4]).random() < self.real_fraction)

    def __getitem__(self, key: ItemKey) -> dict:
        rng = np.random.default_rng([self.seed, key.step, key.micro, key.rank, key.slot, 1])
        paths = self.real_paths if self.uses_real(key.step, key.micro, key.rank) else self.paths
        path = paths[int(rng.integers(len(paths)))]
        total = self._total(path)
        length = min(key.length, total)
        start = int(rng.integers(0, total - length + 1))
        clip = read_shard(path, slice(start, start + length))
        view = crop_and_resize(clip, self.crop_size(clip), rng, self.max_zoom)
        # Augmentations draw from their own generator so that turning them on leaves the clip,
        # length and crop of every step unchanged.
        augment = np.random.default_rng([self.seed, key.step, key.micro, key.rank, key.slot, 3])
        rgb = jitter_colour(view["rgb"], augment, self.colour_jitter)
        item = to_item(rgb, view["depth"], view["K_frames"], clip.poses_c2w)
        disparity, valid, weight = apply_invalid_policy(
            item["disparity"], item["valid"], self.invalid, clip.label
        )
        if "confidence" in view:  # a real-video label: each pixel counts by how far it is trusted
            weight = weight * torch.from_numpy(view["confidence"])[:, None]
        tensors = (item["rgb"], disparity, valid, weight)
        if self.flip and augment.random() < 0.5:
            # A mirrored scene is as plausible as the original; relative depth is unchanged.
            tensors = tuple(t.flip(-1) for t in tensors)
        if self.vertical_flip and augment.random() < self.vertical_flip:
            # An upside-down clip is not a plausible view; it is there to break the "ground is
            # near at the bottom, far at the top" layout every rendered camera shows, so the
            # network has to read depth from the image rather than from the row.
            tensors = tuple(t.flip(-2) for t in tensors)
        return dict(zip(("rgb", "disparity", "valid", "weight"), tensors, strict=True))


class StepBatchSampler(Sampler):
    """Batches of keys for steps ``start .. total-1``, ``grad_accum`` micro-batches per step.

    All clips of a micro-batch share one length, uniform in [min_len, max_len] (the same on every
    process, so DDP ranks do equal work). Clips shorter than the drawn length are cut by the
    dataset, so a batch may only shrink when a shard is shorter than ``max_len``.
    """

    def __init__(
        self,
        start: int,
        total: int,
        batch_size: int,
        grad_accum: int,
        min_len: int,
        max_len: int,
        seed: int = 0,
        rank: int = 0,
    ):
        self.start, self.total = start, total
        self.batch_size, self.grad_accum = batch_size, grad_accum
        self.min_len, self.max_len, self.seed, self.rank = min_len, max_len, seed, rank

    def __len__(self) -> int:
        return max(0, self.total - self.start) * self.grad_accum

    def length_at(self, step: int, micro: int) -> int:
        rng = np.random.default_rng([self.seed, step, micro, 2])
        return int(rng.integers(self.min_len, self.max_len + 1))

    def __iter__(self) -> Iterator[list[ItemKey]]:
        for step in range(self.start, self.total):
            for micro in range(self.grad_accum):
                length = self.length_at(step, micro)
                yield [ItemKey(step, micro, self.rank, slot, length) for slot in range(self.batch_size)]


def _collate(items: list[dict]) -> dict:
    length = min(item["rgb"].shape[0] for item in items)
    return {key: torch.stack([item[key][:length] for item in items]) for key in items[0]}


def step_loader(dataset: StepKeyedShards, sampler: StepBatchSampler, workers: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=_collate,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )
