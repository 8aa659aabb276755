"""The weights shipped inside the package: small, trained, and still giving the recorded output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

from videodepth.eval.metrics import evaluate_video
from videodepth.inference.pipeline import VideoDepthPipeline
from videodepth.models.bundle import DepthModel
from videodepth.models.default import DEFAULT_MODEL_DIR, load_default_model
from videodepth.synth.render import render_clip
from videodepth.synth.scenes import SceneConfig

# Recorded with the committed weights (docs/TRAINING.md, "The shipped model (model card)").
# Session 9 changed only the decoder's padding to replicate (the corner sample was the bright rim).
RECORDED = {
    "mean": 0.44052,
    "std": 0.29864,
    "samples": [0.10557, 0.27445, 0.88725],
    "abs_rel": 0.28417,
    "delta1": 0.44846,
}


def test_weights_are_small_float_safetensors_and_marked_trained():
    files = [p for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 40 * 2**20
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert {p.parent.name for p in weights} == {"unet", "vae", "detail_encoder"}
    for path in weights:
        with safe_open(str(path), "pt") as handle:
            dtypes = {str(handle.get_tensor(k).dtype) for k in handle.keys()}  # noqa: SIM118 (not a dict)
            assert dtypes <= {"torch.float32", "torch.float16"}
    config = json.loads((DEFAULT_MODEL_DIR / "videodepth.json").read_text())
    assert config["notice"] == "" and config["family"] == "videodepth"
    assert "synthetic scenes only" in config["note"] and "--model" in config["note"]
    assert config["max_helpful_steps"] == config["steps"] == 2  # session 6's steps ablation
    assert config["vae_decoder_padding"] == "replicate"  # the designed VAE's borders (designed_vae)
    assert load_default_model().config.notice == ""


@pytest.fixture(scope="module")
def prediction_and_clip():
    # a SynthBench-seed scene (never trained on), 6 frames at 64x96
    clip = render_clip(SceneConfig("indoor"), 1_000_000_777, 6, 64, 96)
    pipeline = VideoDepthPipeline(DepthModel.from_pretrained(DEFAULT_MODEL_DIR))
    return pipeline(clip.rgb, steps=2, seed=0, window=4, overlap=2), clip


def test_recorded_output_on_a_tiny_clip(prediction_and_clip):
    prediction, _ = prediction_and_clip
    assert prediction.shape == (6, 64, 96) and prediction.dtype == np.float32
    assert prediction.min() == 0.0 and prediction.max() == 1.0
    assert float(prediction.mean()) == pytest.approx(RECORDED["mean"], abs=2e-3)
    assert float(prediction.std()) == pytest.approx(RECORDED["std"], abs=2e-3)
    samples = [float(prediction[0, 0, 0]), float(prediction[3, 32, 48]), float(prediction[5, 63, 95])]
    assert samples == pytest.approx(RECORDED["samples"], abs=5e-3)


def test_recorded_accuracy_on_the_tiny_clip(prediction_and_clip):
    prediction, clip = prediction_and_clip
    metrics = evaluate_video(prediction, np.where(clip.valid, clip.depth, 0), clip.max_depth)
    assert metrics["abs_rel"] == pytest.approx(RECORDED["abs_rel"], abs=2e-3)
    assert metrics["delta1"] == pytest.approx(RECORDED["delta1"], abs=5e-3)
