"""The designed VAE: pooling encoder, bilinear decoder, no per-image normalisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from videodepth.training.designed_vae import DESIGNED_VAE, design_vae, designed_latents


@pytest.fixture(scope="module")
def vae():
    return design_vae().eval()


def _image(seed: int, height=64, width=96) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(2, 3, height // 16, width // 16, generator=generator) * 1.6 - 0.8
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


@torch.no_grad()
def test_encoder_is_8x8_average_pooling(vae):
    images = _image(0)
    latents = vae.encode(images).latent_dist.mode() * vae.config.scaling_factor
    assert latents.shape == (2, 4, 8, 12)
    torch.testing.assert_close(latents[:, :3], F.avg_pool2d(images, 8), atol=5e-3, rtol=0)
    assert latents[:, 3].abs().max() == 0
    torch.testing.assert_close(designed_latents(images), latents, atol=1e-4, rtol=0)


@torch.no_grad()
def test_decoder_upsamples_without_normalising(vae):
    images = _image(1)
    latents = vae.encode(images).latent_dist.mode()
    decoded = vae.decode(latents).sample
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert (decoded - images)[inner].abs().mean() < 0.05
    # affine in the content: a frame's own mean and scale survive (no per-image normalisation)
    shifted = vae.decode(vae.encode(0.5 * images - 0.3).latent_dist.mode()).sample
    torch.testing.assert_close(shifted[inner], (0.5 * decoded - 0.3)[inner], atol=1e-2, rtol=0)


def test_layout_is_checked():
    from diffusers import AutoencoderKL

    with pytest.raises(ValueError, match="DESIGNED_VAE"):
        design_vae(
            AutoencoderKL(**{**DESIGNED_VAE, "block_out_channels": (16, 16, 16, 16), "norm_num_groups": 4})
        )


@torch.no_grad()
def test_replicate_padding_keeps_the_borders():
    from videodepth.models.bundle import set_decoder_padding

    vae = design_vae().eval()
    latents = vae.encode(torch.full((1, 3, 64, 96), -0.8)).latent_dist.mode()  # a uniformly far frame
    zero_padded = vae.decode(latents).sample
    # zero padding pulls the outermost pixels towards 0 (mid-depth): the rim the fix removes
    assert zero_padded[..., 0, :].mean() > -0.7
    set_decoder_padding(vae, "replicate")
    decoded = vae.decode(latents).sample
    assert decoded.max() - decoded.min() < 1e-4  # flat to the edge
    assert decoded.mean().item() == pytest.approx(-0.8, abs=0.02)  # the reconstruction error of the design
