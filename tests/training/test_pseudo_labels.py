"""`videodepth train-pseudo-label`: shards from unlabelled video, with a teacher's depth as label."""

from __future__ import annotations

import numpy as np

from videodepth.cli import main
from videodepth.data.dataset import ItemKey, StepKeyedShards, normalised_disparity
from videodepth.data.shards import read_shard
from videodepth.inference.pipeline import VideoDepthPipeline
from videodepth.io.video import VideoReader
from videodepth.models.bundle import DepthModel


def test_each_shard_holds_the_teachers_depth_of_its_frames(tiny_models, tiny_video, tmp_path, capsys):
    sampling = ["--steps", "1", "--window", "4", "--overlap", "1", "--seed", "7"]
    args = [
        "train-pseudo-label",
        str(tiny_video),
        "--out",
        str(tmp_path / "shards"),
        "--frames",
        "8",
        "--max-res",
        "128",
        "--model",
        str(tiny_models["ours"]),
        *sampling,
    ]
    assert main(args) == 0
    paths = sorted((tmp_path / "shards").glob("*.npz"))
    shards = [read_shard(p) for p in paths]
    assert [s.num_frames for s in shards] == [8, 8, 5]  # 21 frames
    # the reference: the same frames through the teacher's pipeline, one shard at a time
    pipeline = VideoDepthPipeline(DepthModel.from_pretrained(tiny_models["ours"]))
    frames = np.stack(list(VideoReader(tiny_video, max_res=128, multiple=max(64, pipeline.size_multiple))))
    for shard, start in zip(shards, (0, 8, 16), strict=True):
        expected = pipeline(frames[start : start + 8], steps=1, window=4, overlap=1, seed=7)
        disparity, valid = normalised_disparity(shard.depth, shard.valid)
        assert valid.all() and shard.label == "fine" and shard.seed == start
        assert np.allclose(disparity, 2 * expected - 1, atol=1e-4)
        assert np.abs(shard.rgb.astype(int) - frames[start : start + 8]).mean() < 8  # JPEG of noise
        assert shard.label_params["source"].startswith("pseudo-label of clip.mp4")
    item = StepKeyedShards([tmp_path / "shards"], (64, 128), seed=0)[ItemKey(0, 0, 0, 0, 4)]
    assert item["disparity"].shape == (4, 1, 64, 128)


def test_a_missing_video_is_one_line(tmp_path, capsys):
    assert main(["train-pseudo-label", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "s")]) != 0
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "none.mp4" in error[0]
