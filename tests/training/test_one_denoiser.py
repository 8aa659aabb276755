"""Training and inference feed the UNet the same tensor, for every family and option.

Each case runs one real training step (``Trainer._batch_loss``) and records what reaches the
UNet; the inference pipeline then encodes the same frames and denoises the same latents at the
same noise levels, and must hand the UNet exactly the same input, time ids and tokens. The draws
of the conditioning (noise augmentation, posterior samples) are made equal by giving training
the pipeline's noise source.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videodepth.diffusion.noise import FrameKeyedNoise
from videodepth.inference.pipeline import VideoDepthPipeline
from videodepth.models.architectures import random_model
from videodepth.models.denoiser import Denoiser
from videodepth.training import trainer as trainer_module
from videodepth.training.config import load_config
from videodepth.training.trainer import Trainer

from .conftest import tiny_config_values, write_config


@pytest.fixture(scope="module")
def tiny_svd(tmp_path_factory):
    root = tmp_path_factory.mktemp("svd")
    random_model("depthcrafter", seed=5).save_published_layout(root / "unet", root)
    return root


def _trainer(tmp_path, shards, svd, family: str, detail: int) -> Trainer:
    values = tiny_config_values(shards, tmp_path / "run", objective={"invalid": "far"})
    if family == "videodepth":
        values["model"] = {"init": "random", "size": "tiny", "seed": 0, "detail_channels": detail}
    else:
        values["model"] = {"init": "svd", "base": str(svd), "family": family, "detail_channels": detail}
    return Trainer(load_config(write_config(tmp_path / "c.yaml", values)), show_progress=False)


def _unet_calls(unet: torch.nn.Module) -> tuple[list[dict], torch.utils.hooks.RemovableHandle]:
    calls: list[dict] = []

    def record(module, args, kwargs):
        sample, timestep = args[:2]
        calls.append(
            {
                "sample": sample.detach().float().clone(),
                "timestep": timestep.detach().float().clone(),
                "tokens": kwargs["encoder_hidden_states"].detach().float().clone(),
                "time_ids": kwargs["added_time_ids"].detach().float().clone(),
            }
        )

    return calls, unet.register_forward_pre_hook(record, with_kwargs=True)


@pytest.mark.parametrize("family", ["videodepth", "depthcrafter", "chronodepth"])
@pytest.mark.parametrize("detail", [0, 8])
def test_training_and_inference_feed_the_unet_the_same_tensor(
    tmp_path, tiny_shards, tiny_svd, family, detail, monkeypatch
):
    trainer = _trainer(tmp_path, tiny_shards, tiny_svd, family, detail)
    model = trainer.model
    frames = np.random.default_rng(1).integers(0, 255, (3, 32, 64, 3), dtype=np.uint8)
    rgb = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0 * 2.0 - 1.0
    disparity = torch.rand(1, 3, 1, 32, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    batch = {
        "rgb": rgb[None],
        "disparity": disparity,
        "valid": torch.ones_like(disparity, dtype=torch.bool),
        "weight": torch.ones_like(disparity),
    }

    # training: one step's loss, with the pipeline's noise source for the conditioning draws
    monkeypatch.setattr(trainer_module, "GeneratorNoise", lambda generator: FrameKeyedNoise(0))
    denoised_at: list[tuple[torch.Tensor, torch.Tensor]] = []
    forward = Denoiser.forward

    def recording_forward(self, x, sigma, cond, *args, **kwargs):
        denoised_at.append((x.detach().clone(), sigma.detach().clone()))
        return forward(self, x, sigma, cond, *args, **kwargs)

    monkeypatch.setattr(Denoiser, "forward", recording_forward)
    trained_calls, handle = _unet_calls(model.unet)
    with torch.no_grad():
        trainer._batch_loss(batch, torch.Generator().manual_seed(0))
    handle.remove()

    # inference: the same frames encoded by the pipeline, the same latents denoised
    pipeline = VideoDepthPipeline(model)
    cond = pipeline.encode_frames(frames, 0, FrameKeyedNoise(0))
    inferred_calls, handle = _unet_calls(model.unet)
    x, sigma = denoised_at[0]
    pipeline.denoise(x, sigma, cond)
    handle.remove()

    (trained,), (inferred,) = trained_calls, inferred_calls
    assert trained["sample"].shape[2] == 4 + 4 + detail
    for key in ("sample", "timestep", "tokens", "time_ids"):
        torch.testing.assert_close(inferred[key], trained[key], rtol=0, atol=1e-5, msg=f"{family} {key}")


def test_the_family_orders_the_channels():
    """depth_first: noisy depth, RGB latents, detail features; rgb_first: RGB latents, detail
    features, noisy depth (the conditioning stays together in both)."""
    from types import SimpleNamespace

    from videodepth.models.config import DepthModelConfig
    from videodepth.models.denoiser import Conditioning

    x, latents = torch.zeros(1, 2, 4, 3, 3), torch.full((1, 2, 12, 3, 3), 7.0)
    cond = Conditioning(latents, torch.zeros(1, 2, 8))
    for order, expected in (("depth_first", [x, latents]), ("rgb_first", [latents, x])):
        model = SimpleNamespace(
            unet=torch.nn.Identity(), detail_encoder=None, config=DepthModelConfig(concat_order=order)
        )
        assert torch.equal(Denoiser(model).unet_input(x, cond), torch.cat(expected, dim=2))
