"""Rendered on the fly: a PyTorch dataset of fresh procedural clips (training seeds only).

Items have the format of :func:`videodepth.data.dataset.to_item` (``rgb``, ``disparity``,
``depth``, ``valid``, ``K``, ``K_frames``, ``poses_c2w``, ``length``). T varies per item:
``ds[i]`` draws it with the ``ds.sample_length(rng)`` hook (uniform [min_len, max_len] by
default), ``ds[(i, T)]`` fixes it, so a batch sampler that yields ``(index, T)`` keys sharing one
T batches with default collation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from torch.utils.data import Dataset

from videodepth.data.dataset import to_item
from videodepth.errors import InputError
from videodepth.synth.render import render_clip
from videodepth.synth.scenes import FAMILIES, SceneConfig
from videodepth.synth.synthbench import training_seed


class ProceduralDataset(Dataset):
    """Renders a fresh clip per item (training seeds only), at exactly the training size.

    ``label``: "fine", "realistic" or "mixed" (half and half, decided per item).
    """

    def __init__(self, num_items: int = 10000, size=(320, 640), min_len=1, max_len=25, seed=0,
                 families: Sequence[str] = FAMILIES, label: str = "fine"):  # fmt: skip
        if not 1 <= min_len <= max_len:
            raise InputError(
                f"clip length range must satisfy 1 <= min_len <= max_len, got [{min_len}, {max_len}]"
            )
        if label not in ("fine", "realistic", "mixed"):
            raise InputError(f"unknown label style {label!r}; choose fine, realistic or mixed")
        unknown = set(families) - set(FAMILIES)
        if unknown:
            raise InputError(f"unknown scene families: {', '.join(sorted(unknown))}")
        self.size = tuple(size)
        self.min_len, self.max_len = min_len, max_len
        self.seed = seed
        self.epoch = 0
        self.sample_length: Callable[[np.random.Generator], int] = lambda rng: int(
            rng.integers(self.min_len, self.max_len + 1)
        )
        self.num_items, self.families, self.label = num_items, tuple(families), label

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, key) -> dict:
        index, length = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), None)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        length = length if length is not None else self.sample_length(rng)
        label = self.label if self.label != "mixed" else ("fine" if rng.random() < 0.5 else "realistic")
        family = self.families[index % len(self.families)]
        clip = render_clip(
            SceneConfig(family), training_seed(self.seed, self.epoch, index), length, *self.size, label=label
        )
        K_frames = clip.K_frames if clip.K_frames is not None else np.repeat(clip.K[None], length, 0)
        return to_item(clip.rgb, np.where(clip.valid, clip.depth, 0), K_frames, clip.poses_c2w)
