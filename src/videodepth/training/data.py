"""Batches keyed by training step, so that resuming replays exactly the same data.

Every batch is a pure function of (seed, step, micro-step, process rank): which shards, the
clip length, the sub-clip start and the random crop are all drawn from generators seeded by
that key. Resuming at step s therefore needs no sampler or worker state, only s.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from videodepth.data.dataset import crop_and_resize, jitter_colour, read_shard_length, to_item
from videodepth.data.shards import list_shards, read_shard
from videodepth.errors import InputError
from videodepth.training.objective import fill_invalid_nearest


@dataclass(frozen=True)
class ItemKey:
    step: int
    micro: int
    rank: int
    slot: int
    length: int


class StepKeyedShards(Dataset):
    """Sub-clips of training shards, indexed by :class:`ItemKey`."""

    def __init__(self, roots: list[str | Path], size: tuple[int, int], seed: int = 0, max_zoom: float = 1.25,
                 invalid: str = "far", colour_jitter: float = 0.0, flip: bool = False,
                 vertical_flip: float = 0.0):
        self.paths = sorted({p for root in roots for p in list_shards(root)})
        if not self.paths:
            raise InputError(f"no training shards (*.npz) found in {', '.join(map(str, roots)) or '(none given)'}")
        self.size, self.seed, self.max_zoom, self.invalid = tuple(size), seed, max_zoom, invalid
        self.colour_jitter, self.flip, self.vertical_flip = colour_jitter, flip, vertical_flip
        self._lengths: dict[Path, int] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def _total(self, path: Path) -> int:
        if path not in self._lengths:
            self._lengths[path] = read_shard_length(path)
        return self._lengths[path]

    def __getitem__(self, key: ItemKey) -> dict:
        rng = np.random.default_rng([self.seed, key.step, key.micro, key.rank, key.slot, 1])
        path = self.paths[int(rng.integers(len(self.paths)))]
        total = self._total(path)
        length = min(key.length, total)
        start = int(rng.integers(0, total - length + 1))
        clip = read_shard(path, slice(start, start + length))
        view = crop_and_resize(clip, self.size, rng, self.max_zoom)
        # Augmentations draw from their own generator so that turning them on leaves the clip,
        # length and crop of every step unchanged.
        augment = np.random.default_rng([self.seed, key.step, key.micro, key.rank, key.slot, 3])
        rgb = jitter_colour(view["rgb"], augment, self.colour_jitter)
        item = to_item(rgb, view["depth"], view["K_frames"], clip.poses_c2w)
        rgb, disparity, valid = item["rgb"], item["disparity"], item["valid"]
        mode = self.invalid if self.invalid != "by_label" else ("far" if clip.label == "fine" else "fill_and_mask")
        if mode == "fill_and_mask":
            disparity = fill_invalid_nearest(disparity, valid)
        elif self.invalid == "by_label":
            valid = torch.ones_like(valid)  # the loss mask of a clip whose holes are kept as far
        if self.flip and augment.random() < 0.5:
            # A mirrored scene is as plausible as the original; relative depth is unchanged.
            rgb, disparity, valid = (t.flip(-1) for t in (rgb, disparity, valid))
        if self.vertical_flip and augment.random() < self.vertical_flip:
            # An upside-down clip is not a plausible view; it is there to break the "ground is
            # near at the bottom, far at the top" layout every rendered camera shows, so the
            # network has to read depth from the image rather than from the row.
            rgb, disparity, valid = (t.flip(-2) for t in (rgb, disparity, valid))
        return {"rgb": rgb, "disparity": disparity, "valid": valid}


class StepBatchSampler(Sampler):
    """Batches of keys for steps ``start .. total-1``, ``grad_accum`` micro-batches per step.

    All clips of a micro-batch share one length, uniform in [min_len, max_len] (the same on every
    process, so DDP ranks do equal work). Clips shorter than the drawn length are cut by the
    dataset, so a batch may only shrink when a shard is shorter than ``max_len``.
    """

    def __init__(self, start: int, total: int, batch_size: int, grad_accum: int, min_len: int, max_len: int,
                 seed: int = 0, rank: int = 0):
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
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=_collate,
                      persistent_workers=False, prefetch_factor=4 if workers > 0 else None)
