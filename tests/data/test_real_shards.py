"""Shards with a per-pixel label confidence (real-video labels): storage, the dataset's weight, and
the step-keyed mixing of real and rendered shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videodepth.data.clip import Clip
from videodepth.data.dataset import ItemKey, StepKeyedShards
from videodepth.data.shards import read_shard, write_shard
from videodepth.errors import InputError
from videodepth.synth.render import render_clip
from videodepth.synth.scenes import SceneConfig

T, H, W = 3, 32, 48


def real_clip(seed: int = 0, white: bool = True) -> Clip:
    """Depth growing left to right; confidence 1 on the near (left) half, 0.25 on the far half, 0
    (no label) in one corner."""
    depth = np.broadcast_to(np.linspace(1.0, 4.0, W, dtype=np.float32), (T, H, W)).copy()
    confidence = (
        np.where(np.arange(W) < W // 2, 1.0, 0.25).astype(np.float32)[None, None].repeat(T, 0).repeat(H, 1)
    )
    depth[:, :4, :4], confidence[:, :4, :4] = 0.0, 0.0
    rgb = np.full((T, H, W, 3), 255 if white else 90 + seed, np.uint8)
    K = np.array([[W, 0, W / 2], [0, W, H / 2], [0, 0, 1]], np.float32)
    return Clip(rgb=rgb, depth=depth, valid=depth > 0, K=K, poses_c2w=np.repeat(np.eye(4, dtype=np.float32)[None], T, 0),
                moving_mask=np.zeros((T, H, W), bool), family=f"real{seed}", label="geometry",
                label_params={"source": "test", "checks": "geometry: used"}, confidence=confidence)  # fmt: skip


@pytest.fixture(scope="module")
def shard_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    (root / "synthetic").mkdir()
    (root / "real").mkdir()
    for i, family in enumerate(("tabletop", "indoor")):
        write_shard(
            render_clip(SceneConfig(family), 10 + i, T, H, W, label="realistic"),
            root / "synthetic" / f"{family}.npz",
        )
    for i in range(2):
        write_shard(real_clip(i), root / "real" / f"real{i}.npz")
    return root


def test_shards_with_and_without_confidence_round_trip(tmp_path):
    clip = real_clip()
    loaded = read_shard(write_shard(clip, tmp_path / "real.npz"))
    assert loaded.confidence is not None and loaded.confidence.dtype == np.float32
    assert np.allclose(loaded.confidence, clip.confidence, atol=1 / 255)  # stored in steps of 1/255
    assert np.array_equal(loaded.depth, clip.depth) and loaded.label == "geometry"
    assert loaded.label_params == {"source": "test", "checks": "geometry: used"}
    part = read_shard(tmp_path / "real.npz", slice(1, 3))
    assert part.confidence.shape == (2, H, W)
    rendered = render_clip(SceneConfig("tabletop"), 1, 2, H, W)
    assert rendered.confidence is None
    assert read_shard(write_shard(rendered, tmp_path / "old.npz")).confidence is None


def test_confidence_of_the_wrong_shape_is_refused(tmp_path):
    clip = real_clip()
    clip.confidence = clip.confidence[:, :-1]
    with pytest.raises(ValueError, match="confidence"):
        write_shard(clip, tmp_path / "bad.npz")


@pytest.mark.parametrize("invalid", ["far", "fill_and_mask", "by_label"])
def test_item_weight_is_the_confidence_times_the_invalid_policy(shard_folders, invalid):
    dataset = StepKeyedShards([shard_folders / "real"], (H, W), seed=2, max_zoom=1.0, invalid=invalid,
                              flip=True, vertical_flip=0.5)  # fmt: skip
    flipped = set()
    for step in range(8):
        item = dataset[ItemKey(step, 0, 0, 0, T)]
        weight, disparity, valid = item["weight"], item["disparity"], item["valid"]
        assert weight.shape == disparity.shape == (T, 1, H, W)
        # near half (disparity above the middle) counts fully, far half by 0.25, unlabelled not at all
        # depth 2.5 (between columns 23 and 24) is disparity 0.4, normalised over [1/4, 1] to -0.6
        near = disparity > -0.6
        expected = torch.where(near, 1.0, 0.25) * valid
        assert torch.allclose(weight, expected, atol=1 / 255), step
        flipped.add(bool(weight[0, 0, 0, 0] == 0))  # the unlabelled corner moved with the flips
    assert flipped == {True, False}


def test_real_fraction_zero_gives_todays_batches_bit_for_bit(shard_folders):
    keys = [ItemKey(step, micro, 0, slot, 2) for step in range(4) for micro in range(2) for slot in range(2)]
    today = StepKeyedShards([shard_folders / "synthetic"], (H, W), seed=5, flip=True, colour_jitter=0.2)
    mixed = StepKeyedShards([shard_folders / "synthetic"], (H, W), seed=5, flip=True, colour_jitter=0.2,
                            real_roots=[shard_folders / "real"], real_fraction=0.0)  # fmt: skip
    for key in keys:
        a, b = today[key], mixed[key]
        assert all(torch.equal(a[name], b[name]) for name in a), key


def test_real_fraction_one_draws_only_real_shards_and_a_half_mixes_by_batch(shard_folders):
    def is_real(item) -> bool:
        return bool((item["rgb"] == 1.0).all())  # the real test shards are white

    only_real = StepKeyedShards([shard_folders / "synthetic"], (H, W), real_roots=[shard_folders / "real"],
                                real_fraction=1.0)  # fmt: skip
    assert all(is_real(only_real[ItemKey(step, 0, 0, slot, 2)]) for step in range(6) for slot in range(2))
    assert is_real(
        StepKeyedShards([], (H, W), real_roots=[shard_folders / "real"], real_fraction=1.0)[
            ItemKey(0, 0, 0, 0, 1)
        ]
    )

    half = StepKeyedShards([shard_folders / "synthetic"], (H, W), seed=1, real_roots=[shard_folders / "real"],
                           real_fraction=0.5)  # fmt: skip
    again = StepKeyedShards([shard_folders / "synthetic"], (H, W), seed=1, real_roots=[shard_folders / "real"],
                            real_fraction=0.5)  # fmt: skip
    sources = []
    for step in range(24):
        batch = [half[ItemKey(step, 0, 0, slot, 2)] for slot in range(3)]
        kinds = {is_real(item) for item in batch}
        assert len(kinds) == 1, step  # one source per batch
        assert half.uses_real(step, 0, 0) == kinds.pop()
        sources.append(half.uses_real(step, 0, 0))
        assert torch.equal(
            batch[0]["disparity"], again[ItemKey(step, 0, 0, 0, 2)]["disparity"]
        )  # keyed by the step
    assert 4 <= sum(sources) <= 20


def test_real_fraction_needs_real_shards_and_a_probability(shard_folders):
    with pytest.raises(InputError, match="real-video shards"):
        StepKeyedShards([shard_folders / "synthetic"], (H, W), real_roots=[], real_fraction=0.3)
    with pytest.raises(InputError, match="real_fraction"):
        StepKeyedShards(
            [shard_folders / "synthetic"], (H, W), real_roots=[shard_folders / "real"], real_fraction=1.5
        )
    with pytest.raises(InputError, match="no training shards"):
        StepKeyedShards([], (H, W), real_roots=[shard_folders / "real"], real_fraction=0.5)


def test_held_out_clips_are_refused_in_the_training_shards(tmp_path):
    write_shard(render_clip(SceneConfig("tabletop"), 3, 3, 32, 48), tmp_path / "kept_clip.npz")
    write_shard(render_clip(SceneConfig("tabletop"), 4, 3, 32, 48), tmp_path / "evaluation_clip.npz")
    assert len(StepKeyedShards([tmp_path], (32, 48), held_out=("another",)).paths) == 2
    with pytest.raises(InputError, match="held-out clips in the training shards: evaluation_clip.npz"):
        StepKeyedShards([tmp_path], (32, 48), held_out=("evaluation_clip",))
