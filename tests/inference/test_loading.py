"""Checkpoint layouts: ours, DepthCrafter's and ChronoDepth's, and every way loading can fail."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import moving_frames
from videodepth.errors import CheckpointError
from videodepth.inference.pipeline import VideoDepthPipeline
from videodepth.models.architectures import random_model
from videodepth.models.bundle import DepthModel


def test_our_format_round_trips_exactly(tmp_path):
    model = random_model("videodepth", seed=4)
    model.config.window = 11
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "scheduler",
        "unet",
        "vae",
        "videodepth.json",
    ]
    assert list((tmp_path / "m" / "unet").glob("*.safetensors"))
    loaded = DepthModel.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config
    for part in ("vae", "unet"):
        saved, restored = getattr(model, part).state_dict(), getattr(loaded, part).state_dict()
        assert saved.keys() == restored.keys()
        assert all(torch.equal(saved[key], restored[key]) for key in saved)
    # Same weights, but loaded tensors may take other CPU kernels: agreement to rounding.
    frames = moving_frames(5, 32, 64)
    expected = VideoDepthPipeline(model)(frames, steps=2)
    assert np.abs(VideoDepthPipeline(loaded)(frames, steps=2) - expected).max() < 1e-3


def test_decoder_padding_travels_with_the_model(tmp_path):
    model = random_model("videodepth", seed=4)
    model.save_pretrained(tmp_path / "default")
    model.config.vae_decoder_padding = "replicate"
    model.save_pretrained(tmp_path / "replicate")

    def paddings(folder):
        vae = DepthModel.from_pretrained(tmp_path / folder).vae
        return {
            m.padding_mode
            for m in vae.decoder.modules()
            if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)
        }

    assert paddings("default") == {"zeros"}
    assert paddings("replicate") == {"replicate"}
    config = tmp_path / "replicate" / "videodepth.json"
    config.write_text(config.read_text().replace('"replicate"', '"mirror"'))
    with pytest.raises(
        CheckpointError, match="vae_decoder_padding must be 'zeros' or 'replicate', not 'mirror'"
    ):
        DepthModel.from_pretrained(tmp_path / "replicate")


@pytest.mark.parametrize("family", ["depthcrafter", "chronodepth"])
def test_published_layouts_load_with_their_family_settings(tiny_models, family):
    model = DepthModel.from_pretrained(tiny_models[family], base=tiny_models[f"{family}_base"])
    assert model.config.family == family
    assert model.image_encoder is not None and model.feature_extractor is not None
    assert model.config.concat_order == ("depth_first" if family == "depthcrafter" else "rgb_first")


def test_family_must_be_named_when_the_folder_does_not_say(tiny_models, tmp_path):
    anonymous = shutil.copytree(tiny_models["depthcrafter"], tmp_path / "unet")
    with pytest.raises(CheckpointError, match="--family"):
        DepthModel.from_pretrained(anonymous, base=tiny_models["depthcrafter_base"])
    model = DepthModel.from_pretrained(anonymous, family="chronodepth", base=tiny_models["depthcrafter_base"])
    assert model.config.family == "chronodepth"


def test_missing_part_is_named(tiny_models, tmp_path):
    base = shutil.copytree(tiny_models["depthcrafter_base"], tmp_path / "svd")
    shutil.rmtree(base / "image_encoder")
    with pytest.raises(CheckpointError, match="image_encoder: missing"):
        DepthModel.from_pretrained(tiny_models["depthcrafter"], base=base)


def test_corrupt_weights_are_reported(tiny_models, tmp_path):
    ours = shutil.copytree(tiny_models["ours"], tmp_path / "ours")
    weights = next((ours / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="unet: cannot be loaded"):
        DepthModel.from_pretrained(ours)


def test_broken_config_is_reported(tiny_models, tmp_path):
    ours = shutil.copytree(tiny_models["ours"], tmp_path / "ours")
    (ours / "videodepth.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="videodepth.json"):
        DepthModel.from_pretrained(ours)


def test_folder_that_is_no_model(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "Something"}))
    with pytest.raises(CheckpointError, match="not a videodepth model folder"):
        DepthModel.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="no such folder"):
        DepthModel.from_pretrained(tmp_path / "absent")


def test_one_policy_builds_every_pipeline(monkeypatch):
    """load_pipeline: a loaded model or the shipped one, float32 on the CPU, the threads asked
    for, the model's note said once (or not at all), offload refused without a GPU."""
    from videodepth.errors import InputError
    from videodepth.loading import load_pipeline, resolve_dtype

    threads = torch.get_num_threads()
    said: list[str] = []
    try:
        model = random_model("videodepth", seed=4)
        model.config.note = "a tiny random model"
        pipeline = load_pipeline(model, device="cpu", threads=1, say=said.append)
        assert pipeline.model is model and pipeline.dtype == torch.float32 and pipeline.device.type == "cpu"
        assert torch.get_num_threads() == 1 and said == ["note: a tiny random model"]
        assert load_pipeline(model, device="cpu", threads=2, say=None) and torch.get_num_threads() == 2
        # no threads given (training's validation, a library caller): the process keeps its own
        assert load_pipeline(model, device="cpu", say=None) and torch.get_num_threads() == 2
        assert said == ["note: a tiny random model"]
        with pytest.raises(InputError, match="--cpu-offload needs a GPU"):
            load_pipeline(model, device="cpu", cpu_offload=True, say=None)
        assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
        assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
        with pytest.raises(InputError, match="unknown dtype"):
            resolve_dtype("float8", torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)


def test_the_default_threads_are_the_idle_cores(monkeypatch):
    from videodepth import threads

    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    samples = iter([(1000, 4000), (1150, 4200)])  # 150 of 200 jiffies idle: 3 of 4 cores
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: None)
    assert threads.default_threads() == 3
    samples = iter([(1000, 4000), (1000, 4200)])  # every core busy: still one thread
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(samples))
    assert threads.default_threads() == 1
    monkeypatch.setattr(threads, "_cpu_times", lambda: None)  # no /proc/stat: every core
    assert threads.default_threads() == 4
