"""Shards, PyTorch datasets, SynthBench split and the data CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videodepth.cli import main
from videodepth.data.dataset import (
    ItemKey,
    StepBatchSampler,
    StepKeyedShards,
    crop_and_resize,
    normalised_disparity,
    step_loader,
)
from videodepth.data.readers import list_sequences, read_sequence
from videodepth.data.shards import read_shard, write_shard
from videodepth.errors import InputError
from videodepth.synth.render import render_clip
from videodepth.synth.scenes import SceneConfig
from videodepth.synth.synthbench import BENCH_SEED_BASE, is_benchmark_seed, synthbench_spec, training_seed


@pytest.fixture(scope="module")
def clip():
    return render_clip("indoor", 9, num_frames=6, height=48, width=80)


def test_shard_round_trip_is_exact_for_geometry(tmp_path, clip):
    path = write_shard(clip, tmp_path / "a.npz")
    assert path.exists() and not list(tmp_path.glob(".*tmp*"))  # atomic: no temporary left behind
    back = read_shard(path)
    assert np.array_equal(back.depth, clip.depth) and np.array_equal(back.moving_mask, clip.moving_mask)
    assert np.array_equal(back.poses_c2w, clip.poses_c2w) and np.array_equal(back.K, clip.K)
    assert np.abs(back.rgb.astype(int) - clip.rgb).mean() < 3  # JPEG q95
    part = read_shard(path, slice(2, 5))
    assert part.num_frames == 3 and np.array_equal(part.depth, clip.depth[2:5])


def test_truncated_or_garbage_shard_names_the_file(tmp_path, clip):
    good = write_shard(clip, tmp_path / "good.npz").read_bytes()
    broken = tmp_path / "broken.npz"
    broken.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match="broken.npz"):
        read_shard(broken)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(InputError, match="corrupt or truncated shard .*garbage.npz"):
        read_shard(garbage)
    with pytest.raises(InputError, match="broken.npz"):
        StepKeyedShards([broken], (32, 48))[ItemKey(0, 0, 0, 0, 1)]


def test_normalised_disparity_hand_computed():
    depth = np.array([[[1.0, 2.0], [4.0, 0.0]]], np.float32)
    disparity, valid = normalised_disparity(depth, depth > 0)
    # disparities 1, 0.5, 0.25 -> [-1, 1]: 1 -> 1, 0.25 -> -1, 0.5 -> 2 * (0.25 / 0.75) - 1
    np.testing.assert_allclose(disparity[0], [[1.0, 2 * 0.25 / 0.75 - 1], [-1.0, -1.0]], atol=1e-6)
    assert valid.tolist() == [[[True, True], [True, False]]]


def test_shard_dataset_shapes_ranges_and_variable_length(tmp_path, clip):
    write_shard(clip, tmp_path / "s.npz")
    ds = StepKeyedShards([tmp_path], (32, 48), seed=1)
    sampler = StepBatchSampler(0, 8, batch_size=1, grad_accum=1, min_len=1, max_len=6, seed=1)
    lengths = set()
    for step in range(8):
        T = sampler.length_at(step, 0)
        item = ds[ItemKey(step, 0, 0, 0, T)]
        lengths.add(T)
        assert item["rgb"].shape == (T, 3, 32, 48) and item["rgb"].dtype == torch.float32
        assert item["rgb"].min() >= -1 and item["rgb"].max() <= 1
        assert item["disparity"].shape == (T, 1, 32, 48)
        valid = item["valid"]
        assert item["disparity"][valid].min() == pytest.approx(-1) and item["disparity"][
            valid
        ].max() == pytest.approx(1)
        assert (item["disparity"][~valid] == -1).all()
        assert item["weight"].shape == (T, 1, 32, 48) and item["weight"].dtype == torch.float32
    assert len(lengths) > 1


def test_crop_keeps_intrinsics_consistent(tmp_path, clip):
    shard = read_shard(write_shard(clip, tmp_path / "s.npz"))
    view = crop_and_resize(shard, (48, 80), np.random.default_rng(0), max_zoom=1.0)
    np.testing.assert_allclose(view["K_frames"][0], clip.K, rtol=1e-6)  # no zoom, full frame: unchanged
    np.testing.assert_array_equal(view["depth"], clip.depth)


def test_same_length_batches_and_dataloader(tmp_path, clip):
    write_shard(clip, tmp_path / "s.npz")
    ds = StepKeyedShards([tmp_path], (32, 48))
    sampler = StepBatchSampler(0, 2, batch_size=2, grad_accum=1, min_len=1, max_len=3, seed=3)
    batches = list(sampler)
    assert len(batches) == 2 and all(len({key.length for key in b}) == 1 for b in batches)
    batch = next(iter(step_loader(ds, sampler, workers=0)))
    T = batches[0][0].length
    assert batch["rgb"].shape == (2, T, 3, 32, 48) and batch["valid"].dtype == torch.bool


def test_procedural_dataset_batches_one_length_per_batch():
    from videodepth.synth.dataset import ProceduralDataset

    ds = ProceduralDataset(num_items=4, size=(32, 48), min_len=1, max_len=3, families=("tabletop",))
    keys = [[(0, 2), (1, 2)], [(2, 3), (3, 3)]]  # (index, T) keys fix T; ds[i] draws it
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_sampler=keys)))
    assert batch["rgb"].shape == (2, 2, 3, 32, 48) and batch["valid"].dtype == torch.bool
    assert 1 <= ds[0]["length"] <= 3 and ds[(1, 3)]["K_frames"].shape == (3, 3, 3)


def test_seed_split_is_disjoint():
    spec = synthbench_spec()
    # the benchmark is frozen: 9 clips of each original family, whatever families the engine adds
    assert len(spec) == 45 and {s.family for s in spec} == {
        "indoor",
        "street",
        "terrain",
        "tabletop",
        "people",
    }
    assert [s.name for s in spec[:2]] == ["indoor_00", "indoor_01"] and spec[0].seed == BENCH_SEED_BASE
    assert all(is_benchmark_seed(s.seed) and 50 <= s.num_frames <= 110 for s in spec)
    assert len({s.seed for s in spec}) == len(spec)
    assert not any(
        is_benchmark_seed(training_seed(b, e, i)) for b in range(3) for e in range(3) for i in range(200)
    )
    assert BENCH_SEED_BASE == 10**9


def test_cli_synthbench_and_contact_sheet(tmp_path, capsys, monkeypatch):
    import videodepth.synth.synthbench as sb

    one_clip = [sb.BenchClip("tabletop_00", "tabletop", BENCH_SEED_BASE, 3, "orbit")]
    monkeypatch.setattr(sb, "synthbench_spec", lambda clips_per_family=1: one_clip)
    assert main(["data", "synthbench", "--out", str(tmp_path / "sb"), "--size", "32x48"]) == 0
    sequences = list_sequences(tmp_path / "sb")
    assert [p.name for p in sequences] == ["tabletop_00"]
    seq = read_sequence(sequences[0])
    assert (
        seq.rgb.shape == (3, 32, 48, 3) and seq.poses_c2w.shape == (3, 4, 4) and seq.moving_mask is not None
    )
    fine = render_clip(SceneConfig("tabletop", camera_motion="orbit"), BENCH_SEED_BASE, 3, 32, 48)
    np.testing.assert_allclose(seq.depth, np.where(fine.valid, fine.depth, 0), atol=0.6 / 1000)  # 16-bit mm
    out = tmp_path / "sheet.png"
    assert main(["data", "contact-sheet", "--out", str(out), "--from", str(tmp_path / "sb")]) == 0
    assert out.stat().st_size < 1_000_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --clean: the same scene and depth without the simulated camera's blur, noise and compression
    assert main(["data", "synthbench", "--out", str(tmp_path / "clean"), "--size", "32x48", "--clean"]) == 0
    clean = read_sequence(tmp_path / "clean" / "tabletop_00")
    plain = render_clip(
        SceneConfig("tabletop", camera_motion="orbit"), BENCH_SEED_BASE, 3, 32, 48, photographic=False
    )
    assert np.array_equal(clean.depth, seq.depth) and np.array_equal(clean.rgb, plain.rgb)
    assert (
        not np.array_equal(clean.rgb, seq.rgb)
        and clean.extra["clean"] is True
        and seq.extra["clean"] is False
    )
    # a rerun into the other kind's folder is refused, not silently mixed
    assert main(["data", "synthbench", "--out", str(tmp_path / "sb"), "--size", "32x48", "--clean"]) == 2
    assert "was rendered without --clean" in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["data", "convert", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err
    assert main(["data", "render", "--out", str(tmp_path), "--families", "moon", "--clips", "1"]) == 2
    assert "unknown scene families: moon" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):  # refused when parsed, before anything is rendered
        main(["data", "render", "--out", str(tmp_path), "--look-up", "1.5", "--clips", "1"])
    assert "--look-up: must be a number >= 0 and <= 1, got 1.5" in capsys.readouterr().err


def test_cli_render_looks_up_when_asked(tmp_path):
    from videodepth.data.shards import read_shard

    for name, look_up in (("level", "0"), ("up", "1")):
        assert (
            main(
                [
                    "data",
                    "render",
                    "--out",
                    str(tmp_path / name),
                    "--families",
                    "street",
                    "--clips",
                    "1",
                    "--frames",
                    "1",
                    "--size",
                    "16x24",
                    "--look-up",
                    look_up,
                ]
            )
            == 0
        )
    level, up = (read_shard(next((tmp_path / n).glob("*.npz"))) for n in ("level", "up"))
    assert level.seed == up.seed
    # OpenCV camera, y-up world: the optical axis' world-y component grows when the camera pitches up
    assert up.poses_c2w[0, 1, 2] > level.poses_c2w[0, 1, 2] + np.sin(np.radians(9))


def test_rgbd_sequences_become_training_shards(tmp_path, clip, capsys):
    from videodepth.data.dataset import ItemKey, StepKeyedShards
    from videodepth.data.readers import write_rgbd_folder

    folder = write_rgbd_folder(clip, tmp_path / "real" / "kitchen")
    sequence = read_sequence(folder)
    assert (
        main(
            [
                "data",
                "shards",
                str(tmp_path / "real"),
                "--out",
                str(tmp_path / "shards"),
                "--label",
                "realistic",
                "--frames",
                "4",
            ]
        )
        == 0
    )
    paths = sorted((tmp_path / "shards").glob("*.npz"))
    expected = [(0, 4), (4, sequence.num_frames)]  # 6 frames: a full shard and the rest
    assert len(paths) == len(expected)
    for path, (start, stop) in zip(paths, expected, strict=True):
        shard = read_shard(path)
        assert shard.label == "realistic" and shard.num_frames == stop - start
        assert np.array_equal(shard.depth, sequence.depth[start:stop])
        assert np.abs(shard.rgb.astype(int) - sequence.rgb[start:stop]).mean() < 3  # JPEG
        assert np.allclose(shard.poses_c2w, sequence.poses_c2w[start:stop])
    item = StepKeyedShards([tmp_path / "shards"], (32, 64), seed=0)[ItemKey(0, 0, 0, 0, 2)]
    assert item["rgb"].shape == (2, 3, 32, 64)
    (tmp_path / "empty").mkdir()
    assert (
        main(["data", "shards", str(tmp_path / "empty"), "--out", str(tmp_path / "x"), "--label", "fine"])
        == 2
    )
    assert "no sequences in a supported layout" in capsys.readouterr().err


def test_a_sequence_without_camera_gets_a_nominal_one_and_says_so(clip):
    from videodepth.data.clip import Sequence, sequence_to_clip

    sequence = Sequence(name="phone", rgb=clip.rgb, depth=clip.depth, K=None, poses_c2w=None, max_depth=10.0)
    part = sequence_to_clip(sequence, slice(1, 4), "realistic")
    width = clip.rgb.shape[2]
    assert part.K[0, 0] == width and np.array_equal(part.poses_c2w, np.repeat(np.eye(4)[None], 3, 0))
    assert part.label_params == {"source": "phone", "intrinsics": "assumed", "poses": "assumed"}
    assert np.array_equal(part.valid, (clip.depth[1:4] > 1e-3) & (clip.depth[1:4] < 10.0))
