"""Training the published families: from SVD's own weights (where both papers start) or from a
published UNet, with the family's conditioning exactly as the pipeline computes it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from videodepth.errors import CheckpointError, InputError
from videodepth.inference.pipeline import VideoDepthPipeline
from videodepth.models.architectures import random_model
from videodepth.models.bundle import DepthModel
from videodepth.training.config import load_config
from videodepth.training.trainer import Trainer

from .conftest import tiny_config_values, write_config


@pytest.fixture(scope="module")
def tiny_svd(tmp_path_factory):
    """A tiny random model in the layout of the SVD img2vid repository (unet/ beside vae/ etc.)."""
    root = tmp_path_factory.mktemp("svd")
    random_model("depthcrafter", seed=5).save_published_layout(root / "unet", root)
    return root


def _svd_config(tmp_path, shards, base, family, **changes):
    tmp_path.mkdir(parents=True, exist_ok=True)
    values = tiny_config_values(shards, tmp_path / "run", steps=2, **changes)
    values["model"] = {"init": "svd", "base": str(base), "family": family}
    values["inference"] = {"strategy": "naive", "window": 2, "context": 0, "steps": 2}
    return load_config(write_config(tmp_path / "c.yaml", values))


@pytest.mark.parametrize("family", ["depthcrafter", "chronodepth"])
def test_training_from_svd_starts_from_its_unet_and_saves_a_family_model(
    tmp_path, tiny_shards, tiny_svd, family
):
    noise = "clip" if family == "depthcrafter" else "frame"
    trainer = Trainer(
        _svd_config(tmp_path, tiny_shards, tiny_svd, family, objective={"noise": noise}), show_progress=False
    )
    svd = DepthModel.from_svd(tiny_svd, family)
    start = svd.unet.state_dict()
    assert all(torch.equal(t, start[n]) for n, t in trainer.model.unet.state_dict().items())
    model = DepthModel.from_pretrained(trainer.train())
    assert model.config.family == family
    assert dataclasses.replace(
        model.config, strategy="", window=0, context=0, steps=0
    ) == dataclasses.replace(svd.config, strategy="", window=0, context=0, steps=0)
    assert model.image_encoder is not None and model.feature_extractor is not None
    assert any(not torch.equal(t, start[n]) for n, t in model.unet.state_dict().items())
    # the saved model runs as any other
    frames = np.random.default_rng(0).integers(0, 255, (3, 32, 64, 3), dtype=np.uint8)
    depth = VideoDepthPipeline(model)(frames, seed=0)
    assert depth.shape == (3, 32, 64) and np.isfinite(depth).all()


def test_gradient_checkpointing_changes_memory_not_results(tmp_path, tiny_shards, tiny_svd):
    states = []
    for checkpointing in (False, True):
        config = _svd_config(
            tmp_path / str(checkpointing),
            tiny_shards,
            tiny_svd,
            "depthcrafter",
            optim={"gradient_checkpointing": checkpointing},
        )
        trainer = Trainer(config, show_progress=False)
        assert trainer.model.unet.is_gradient_checkpointing == checkpointing
        trainer.train()
        states.append(trainer.unwrapped.state_dict())
    for name, tensor in states[0].items():
        assert torch.allclose(tensor, states[1][name], atol=1e-6), name


def test_training_from_a_published_unet_folder(tmp_path, tiny_shards, tiny_models):
    values = tiny_config_values(tiny_shards, tmp_path / "run", steps=1)
    values["model"] = {"init": str(tiny_models["chronodepth"]), "base": str(tiny_models["chronodepth_base"])}
    values["objective"] = {"noise": "frame"}
    model = DepthModel.from_pretrained(
        Trainer(load_config(write_config(tmp_path / "c.yaml", values)), show_progress=False).train()
    )
    assert model.config.family == "chronodepth" and model.config.concat_order == "rgb_first"


def test_svd_init_errors_are_one_line(tmp_path, tiny_shards, tiny_svd):
    with pytest.raises(CheckpointError, match="needs a published family"):
        Trainer(_svd_config(tmp_path / "a", tiny_shards, tiny_svd, "auto"), show_progress=False)
    with pytest.raises(CheckpointError, match="no unet/ folder"):
        Trainer(
            _svd_config(tmp_path / "b", tiny_shards, tiny_svd / "vae", "depthcrafter"), show_progress=False
        )
    with pytest.raises(InputError, match="use encoder: vae"):
        Trainer(
            _svd_config(
                tmp_path / "c", tiny_shards, tiny_svd, "depthcrafter", objective={"encoder": "designed"}
            ),
            show_progress=False,
        )


SVD_RECIPES = Path(__file__).resolve().parents[2] / "configs" / "svd"


def test_svd_recipes_keep_the_papers_settings():
    load = lambda name: load_config(SVD_RECIPES / f"{name}.yaml")  # noqa: E731
    s1, s2, s3 = (load(f"depthcrafter_stage{i}") for i in (1, 2, 3))
    assert (s1.model.init, s1.model.family) == ("svd", "depthcrafter")
    assert (s1.trainable, s2.trainable, s3.trainable) == ("all", "temporal", "spatial")
    assert [(s.data.min_len, s.data.max_len) for s in (s1, s2, s3)] == [(1, 25), (1, 110), (45, 45)]
    assert [s.steps for s in (s1, s2, s3)] == [80000, 40000, 10000]
    for stage in (s1, s2, s3):
        assert stage.data.size == (320, 640) and stage.optim.lr == 1e-5
        assert stage.data.batch_size * stage.optim.grad_accum == 8
    spatial, temporal = load("chronodepth_spatial"), load("chronodepth_temporal")
    assert (spatial.model.init, spatial.model.family, spatial.trainable) == ("svd", "chronodepth", "spatial")
    assert (temporal.trainable, temporal.data.min_len, temporal.data.max_len) == ("temporal", 1, 5)
    assert spatial.objective.noise == temporal.objective.noise == "frame"
    assert spatial.optim.lr == temporal.optim.lr == 3e-5


@pytest.mark.parametrize("recipe", ["depthcrafter_stage1", "chronodepth_spatial"])
def test_svd_recipes_run_a_step_on_a_tiny_svd(tmp_path, tiny_shards, tiny_svd, recipe):
    overrides = [
        f"model.base={tiny_svd}",
        f"data.shards=[{tiny_shards}]",
        "data.size=[32, 64]",
        "data.max_len=3",
        "data.workers=0",
        "steps=1",
        "optim.grad_accum=1",
        "optim.warmup_steps=0",
        "validation.synthbench=",
        f"out={tmp_path / 'run'}",
    ]
    model = DepthModel.from_pretrained(
        Trainer(load_config(SVD_RECIPES / f"{recipe}.yaml", overrides), show_progress=False).train()
    )
    assert model.config.family == recipe.split("_")[0]


def test_hub_ids_offline_name_what_to_download(monkeypatch, tmp_path, tiny_shards):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError, match="hf download stabilityai/stable-video-diffusion-img2vid-xt"):
        Trainer(
            _svd_config(
                tmp_path / "a", tiny_shards, "stabilityai/stable-video-diffusion-img2vid-xt", "depthcrafter"
            ),
            show_progress=False,
        )
    values = tiny_config_values(tiny_shards, tmp_path / "run")
    values["model"] = {"init": "tencent/DepthCrafter"}
    with pytest.raises(CheckpointError, match="hf download tencent/DepthCrafter"):
        Trainer(load_config(write_config(tmp_path / "c.yaml", values)), show_progress=False)
