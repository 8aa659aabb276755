"""The training loop on a tiny model: exact resume, the VAE stage, the CLI, bad inputs."""

from __future__ import annotations

import json

import pytest
import torch

from videodepth.cli import main
from videodepth.errors import CheckpointError, InputError
from videodepth.models.bundle import DepthModel
from videodepth.training.config import load_config
from videodepth.training.trainer import Trainer, export_checkpoint, latest_checkpoint

from .conftest import tiny_config_values, write_config


def _final_state(out):
    return torch.load(latest_checkpoint(out) / "state.pt", weights_only=False)


@pytest.mark.parametrize(
    ("noise", "detail_channels", "augment"), [("clip", 0, False), ("frame", 0, False), ("clip", 3, True)]
)
def test_resume_is_exact(tmp_path, tiny_shards, noise, detail_channels, augment):
    data = {"colour_jitter": 0.2, "flip": True, "vertical_flip": 0.5} if augment else {}
    values = tiny_config_values(tiny_shards, tmp_path / "x", objective={"noise": noise}, data=data)
    values["model"]["detail_channels"] = detail_channels
    path = write_config(tmp_path / "c.yaml", values)
    Trainer(load_config(path), tmp_path / "once", show_progress=False).train()
    Trainer(load_config(path, ["steps=2"]), tmp_path / "split", show_progress=False).train()
    resumed = Trainer(load_config(path), tmp_path / "split", resume=True, show_progress=False)
    assert resumed.step == 2
    resumed.train()
    once, split = _final_state(tmp_path / "once"), _final_state(tmp_path / "split")
    assert once["step"] == split["step"] == 4
    for name, tensor in once["module"].items():
        assert torch.equal(tensor, split["module"][name]), name
    for a, b in zip(once["ema"]["shadow_params"], split["ema"]["shadow_params"], strict=True):
        assert torch.equal(a, b)
    # and training moved the weights at all
    fresh = Trainer(load_config(path), tmp_path / "fresh", show_progress=False)
    assert any(not torch.equal(t, fresh.unwrapped.state_dict()[n]) for n, t in once["module"].items())


def test_stage_writes_logs_and_a_loadable_model(tmp_path, tiny_shards):
    values = tiny_config_values(
        tiny_shards,
        tmp_path / "run",
        trainable="temporal",
        inference={"strategy": "naive", "window": 2, "context": 0},
    )
    path = write_config(tmp_path / "c.yaml", values)
    assert main(["train", str(path), "--no-progress", "--set", "steps=2"]) == 0
    model = DepthModel.from_pretrained(tmp_path / "run" / "model")
    assert (model.config.strategy, model.config.window) == ("naive", 2)
    rows = (tmp_path / "run" / "train.csv").read_text().splitlines()
    assert rows[0] == "step,loss,lr,frames_per_s,elapsed_s,peak_memory_mib" and len(rows) == 3
    assert float(rows[-1].split(",")[-1]) > 50  # MiB: this process holds at least torch
    state = json.loads((latest_checkpoint(tmp_path / "run") / "trainer_state.json").read_text())
    assert state == {"step": 2, "num_processes": 1}
    # frozen spatial weights did not move
    start = Trainer(load_config(path), tmp_path / "other", show_progress=False).model.unet.state_dict()
    trained = model.unet.state_dict()
    assert torch.equal(trained["conv_in.weight"], start["conv_in.weight"])
    assert not torch.equal(
        trained["down_blocks.0.resnets.0.temporal_res_block.conv1.weight"],
        start["down_blocks.0.resnets.0.temporal_res_block.conv1.weight"],
    )


def test_detail_encoder_is_added_trained_and_saved(tmp_path, tiny_shards):
    values = tiny_config_values(tiny_shards, tmp_path / "run", steps=2)
    values["model"]["detail_channels"] = 3
    trainer = Trainer(load_config(write_config(tmp_path / "c.yaml", values)), show_progress=False)
    start = {n: t.clone() for n, t in trainer.model.detail_encoder.state_dict().items()}
    model = DepthModel.from_pretrained(trainer.train())
    assert model.unet.config.in_channels == 2 * model.vae.config.latent_channels + 3
    assert any(not torch.equal(t, start[n]) for n, t in model.detail_encoder.state_dict().items())


def test_a_designed_vae_model_keeps_its_borders(tmp_path, tiny_shards):
    values = tiny_config_values(
        tiny_shards, tmp_path / "run", steps=1, model={"init": "designed"}, objective={"encoder": "designed"}
    )
    model = DepthModel.from_pretrained(
        Trainer(load_config(write_config(tmp_path / "c.yaml", values)), show_progress=False).train()
    )
    assert model.config.vae_decoder_padding == "replicate"
    assert model.vae.decoder.up_blocks[0].upsamplers[0].conv.padding_mode == "replicate"


def test_a_loaded_detail_encoder_is_widened_and_trained(tmp_path, tiny_shards):
    first = tiny_config_values(tiny_shards, tmp_path / "first", steps=1, model={"detail_channels": 3})
    start = Trainer(load_config(write_config(tmp_path / "a.yaml", first)), show_progress=False).train()
    wider = tiny_config_values(
        tiny_shards,
        tmp_path / "run",
        steps=2,
        model={"init": str(start), "detail_channels": 5, "detail_widths": [16, 32, 48]},
    )
    model = DepthModel.from_pretrained(
        Trainer(load_config(write_config(tmp_path / "b.yaml", wider)), show_progress=False).train()
    )
    assert model.detail_encoder.config.out_channels == 5 and tuple(model.detail_encoder.config.widths) == (
        16,
        32,
        48,
    )
    assert model.unet.config.in_channels == 2 * model.vae.config.latent_channels + 5
    narrower = tiny_config_values(
        tiny_shards, tmp_path / "other", model={"init": str(start), "detail_channels": 2}
    )
    with pytest.raises(InputError, match="detail_widths: a detail encoder can only be widened"):
        Trainer(load_config(write_config(tmp_path / "c.yaml", narrower)), show_progress=False)


def test_a_model_trained_from_the_shipped_one_drops_its_note_and_step_limit(tmp_path, tiny_shards):
    from videodepth.models.default import DEFAULT_MODEL_DIR

    values = tiny_config_values(
        tiny_shards, tmp_path / "run", steps=1, model={"init": str(DEFAULT_MODEL_DIR)}
    )
    model = DepthModel.from_pretrained(
        Trainer(load_config(write_config(tmp_path / "c.yaml", values)), show_progress=False).train()
    )
    assert (
        model.config.note == "" and model.config.max_helpful_steps == 0 and model.detail_encoder is not None
    )


@pytest.mark.parametrize("detail_channels", [0, 3])
def test_exported_checkpoint_is_the_model_the_run_writes(tmp_path, tiny_shards, detail_channels):
    values = tiny_config_values(tiny_shards, tmp_path / "run")
    values["model"]["detail_channels"] = detail_channels
    final = DepthModel.from_pretrained(
        Trainer(load_config(write_config(tmp_path / "c.yaml", values)), show_progress=False).train()
    )
    assert main(["train-export", str(tmp_path / "run"), "--out", str(tmp_path / "last")]) == 0
    exported = DepthModel.from_pretrained(tmp_path / "last")
    assert exported.config == final.config
    parts = ["unet", "vae"] + (["detail_encoder"] if detail_channels else [])
    for part in parts:
        ours, theirs = getattr(exported, part).state_dict(), getattr(final, part).state_dict()
        assert all(torch.equal(t, theirs[n]) for n, t in ours.items()), part
    # an earlier step (checkpoint_every 2 of 4 steps) is another model
    earlier = DepthModel.from_pretrained(export_checkpoint(tmp_path / "run", tmp_path / "mid", step=2))
    assert not torch.equal(earlier.unet.conv_in.weight, final.unet.conv_in.weight)


def test_export_errors_name_what_is_missing(tmp_path, tiny_shards, capsys):
    Trainer(
        load_config(write_config(tmp_path / "c.yaml", tiny_config_values(tiny_shards, tmp_path / "run"))),
        show_progress=False,
    ).train()
    with pytest.raises(InputError, match=r"no checkpoint at step 3 \(kept: step_0000002, step_0000004\)"):
        export_checkpoint(tmp_path / "run", tmp_path / "m", step=3)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.yaml").write_text((tmp_path / "run" / "config.yaml").read_text())
    assert main(["train-export", str(tmp_path / "empty"), "--out", str(tmp_path / "m")]) != 0
    assert "no finished checkpoint to export" in capsys.readouterr().err


def test_vae_stage_runs(tmp_path, tiny_shards):
    values = tiny_config_values(
        tiny_shards, tmp_path / "vae", task="vae", steps=2, data={"min_len": 1, "max_len": 1}
    )
    out = Trainer(load_config(write_config(tmp_path / "v.yaml", values)), show_progress=False).train()
    loss = float((tmp_path / "vae" / "train.csv").read_text().splitlines()[-1].split(",")[1])
    assert loss > 0 and (out / "vae" / "config.json").exists()


def test_user_errors(tmp_path, tiny_shards, capsys):
    path = write_config(tmp_path / "c.yaml", tiny_config_values(tiny_shards, tmp_path / "run", steps=2))
    Trainer(load_config(path), show_progress=False).train()
    with pytest.raises(InputError, match="already holds checkpoints"):
        Trainer(load_config(path), show_progress=False)
    with pytest.raises(CheckpointError, match="no such model folder"):
        Trainer(load_config(path, ["model.init=/nonexistent/model"]), tmp_path / "b", show_progress=False)
    with pytest.raises(InputError, match="no training shards"):
        Trainer(
            load_config(path, [f"data.shards=[{tmp_path / 'empty'}]"]), tmp_path / "c", show_progress=False
        ).train() if (tmp_path / "empty").mkdir() is None else None
    # a missing benchmark folder is refused before the first step, not after the last
    with pytest.raises(InputError, match="validation.synthbench .*no such folder"):
        Trainer(
            load_config(path, [f"validation.synthbench={tmp_path / 'nope'}"]),
            tmp_path / "d",
            show_progress=False,
        )
    assert main(["train", str(tmp_path / "nope.yaml")]) != 0
    assert "training config not found" in capsys.readouterr().err


def test_sigma_max_fraction_trains_at_the_models_own_sampling_sigma_max(tmp_path, tiny_shards, monkeypatch):
    from videodepth.models.denoiser import Denoiser

    seen = []
    real_loss = Denoiser.loss

    def recording_loss(self, x0, cond, sigma, *args, **kwargs):
        seen.append(sigma.clone())
        return real_loss(self, x0, cond, sigma, *args, **kwargs)

    monkeypatch.setattr(Denoiser, "loss", recording_loss)
    values = tiny_config_values(tiny_shards, tmp_path / "run", steps=2, objective={"sigma_max_fraction": 1.0})
    trainer = Trainer(
        load_config(write_config(tmp_path / "c.yaml", values)), tmp_path / "run", show_progress=False
    )
    trainer.model.scheduler.register_to_config(sigma_max=321.0)  # whatever the model's sampler starts at
    trainer.train()
    assert len(seen) == 2 and all(torch.all(s == 321.0) for s in seen)
