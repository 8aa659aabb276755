"""Training augmentation: photometric jitter per clip, horizontal and vertical flips, keyed like the data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videodepth.data.dataset import ItemKey, StepKeyedShards, jitter_colour
from videodepth.data.shards import read_shard
from videodepth.errors import InputError
from videodepth.training.config import load_config

from .conftest import tiny_config_values, write_config


def _clip(frames: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.repeat(rng.integers(0, 256, (1, 8, 12, 3), dtype=np.uint8), frames, axis=0)


def test_zero_strength_is_the_identity():
    clip = _clip()
    assert jitter_colour(clip, np.random.default_rng(1), 0.0) is clip


def test_one_change_for_the_whole_clip():
    clip = _clip()
    out = jitter_colour(clip, np.random.default_rng(1), 0.3)
    assert out.dtype == np.uint8 and out.shape == clip.shape
    assert not np.array_equal(out, clip)
    assert all(np.array_equal(out[0], frame) for frame in out[1:])  # identical frames stay identical
    np.testing.assert_array_equal(out, jitter_colour(clip, np.random.default_rng(1), 0.3))


def test_augmentation_changes_only_what_it_should(tiny_shards):
    plain = StepKeyedShards([tiny_shards], (32, 64), seed=3)
    jittered = StepKeyedShards([tiny_shards], (32, 64), seed=3, colour_jitter=0.3)
    flipped = StepKeyedShards([tiny_shards], (32, 64), seed=3, flip=True)
    mirrored = 0
    for step in range(8):
        key = ItemKey(step=step, micro=0, rank=0, slot=0, length=3)
        base, colour, flip = plain[key], jittered[key], flipped[key]
        # colour jitter: same clip, crop and labels, other colours
        assert torch.equal(colour["disparity"], base["disparity"]) and torch.equal(
            colour["valid"], base["valid"]
        )
        assert not torch.equal(colour["rgb"], base["rgb"])
        # flip: the same item or its mirror image, RGB and labels together
        is_mirror = torch.equal(flip["rgb"], base["rgb"].flip(-1))
        assert is_mirror or torch.equal(flip["rgb"], base["rgb"])
        want = base["disparity"].flip(-1) if is_mirror else base["disparity"]
        assert torch.equal(flip["disparity"], want)
        mirrored += is_mirror
    assert 0 < mirrored < 8


def test_vertical_flip_turns_rgb_and_labels_upside_down_together(tiny_shards):
    plain = StepKeyedShards([tiny_shards], (32, 64), seed=3, flip=True)
    upside_down = StepKeyedShards([tiny_shards], (32, 64), seed=3, flip=True, vertical_flip=0.5)
    turned = 0
    for step in range(12):
        key = ItemKey(step=step, micro=0, rank=0, slot=0, length=3)
        base, item = plain[key], upside_down[key]
        is_turned = torch.equal(item["rgb"], base["rgb"].flip(-2)) and not torch.equal(
            item["rgb"], base["rgb"]
        )
        assert is_turned or torch.equal(item["rgb"], base["rgb"])  # horizontal flips are unchanged
        for name in ("disparity", "valid"):
            assert torch.equal(item[name], base[name].flip(-2) if is_turned else base[name])
        turned += is_turned
    assert 0 < turned < 12
    never = StepKeyedShards([tiny_shards], (32, 64), seed=3, flip=True, vertical_flip=0.0)
    always = StepKeyedShards([tiny_shards], (32, 64), seed=3, flip=True, vertical_flip=1.0)
    key = ItemKey(step=0, micro=0, rank=0, slot=0, length=3)
    assert torch.equal(never[key]["rgb"], plain[key]["rgb"])
    assert torch.equal(always[key]["rgb"], plain[key]["rgb"].flip(-2))


@pytest.mark.parametrize("name", ["colour_jitter", "vertical_flip"])
def test_augmentation_strengths_are_checked(tmp_path, tiny_shards, name):
    values = tiny_config_values(tiny_shards, tmp_path / "run", data={name: 2.0})
    with pytest.raises(InputError, match=f"{name} must be in"):
        load_config(write_config(tmp_path / "c.yaml", values))


def test_holes_follow_the_label_of_each_clip(tmp_path, tiny_shards):
    # by_label: a fine clip keeps its holes (sky) at the far end and trains on every pixel; a
    # realistic clip (stereo holes) is filled and masked.
    for shard in sorted(tiny_shards.glob("*.npz")):
        folder = tmp_path / shard.stem
        folder.mkdir()
        (folder / shard.name).symlink_to(shard)
        key = ItemKey(step=0, micro=0, rank=0, slot=0, length=3)
        item = StepKeyedShards([folder], (32, 64), invalid="by_label")[key]
        fine = read_shard(shard, slice(0, 1)).label == "fine"
        same = StepKeyedShards([folder], (32, 64), invalid="far" if fine else "fill_and_mask")[key]
        assert torch.equal(item["disparity"], same["disparity"])
        assert item["valid"].all() if fine else torch.equal(item["valid"], same["valid"])


def test_the_invalid_policy_is_one_weight_map_per_item(tmp_path, tiny_shards):
    # "far": every pixel counts; "fill_and_mask": only valid ones (holes filled); "by_label": per clip.
    key = ItemKey(step=0, micro=0, rank=0, slot=0, length=3)
    for shard in sorted(tiny_shards.glob("*.npz")):
        folder = tmp_path / shard.stem
        folder.mkdir()
        (folder / shard.name).symlink_to(shard)
        far, masked, by_label = (
            StepKeyedShards([folder], (32, 64), invalid=mode, flip=True)[key]
            for mode in ("far", "fill_and_mask", "by_label")
        )
        assert far["weight"].dtype == torch.float32 and far["weight"].shape == far["valid"].shape
        assert (far["weight"] == 1).all()
        assert torch.equal(masked["weight"], masked["valid"].float())
        fine = read_shard(shard, slice(0, 1)).label == "fine"
        assert torch.equal(by_label["weight"], (far if fine else masked)["weight"])
        if not fine:  # realistic clips have holes: they are filled and weigh nothing
            assert not masked["valid"].all() and (masked["disparity"][~masked["valid"]] > -1).any()
