"""A hand-set ("designed") VAE: 8x8 average pooling in, bilinear up-sampling out.

Why: on this project's 2-core CPU a learned VAE of the SMALL_VAE size trained at about one 64x64
image a second, far too slow for the time we had, and a diffusion UNet can only learn from
latents that carry the image. So the shipped VAE is an ``AutoencoderKL`` (diffusers' class, 8x
down-sampling, 4 latent channels, scaling 0.18215: the pipeline treats it like any other) in a
lean layout, :data:`DESIGNED_VAE` (12 channels, no residual blocks on the way down), whose
weights are set by hand:

- encoder: each down-sampler averages 2x2 pixels; the latent mean of channel k (k = 0, 1, 2) is
  the 8x8 mean of input channel k divided by the scaling factor, so ``mode() * scaling_factor``
  is the pooled image in [-1, 1] (unit-range latents, as EDM's sigma_data = 1 assumes);
  channel 3 is zero; the log-variance is -20 (a deterministic posterior);
- decoder: channel k is up-sampled bilinearly (nearest x2 then a [1, 2, 1] / 4 filter, three
  times) and written out unchanged, so a depth latent decodes to disparity in [-1, 1].

GroupNorm layers would normalise the content away; each group of four channels therefore holds
a carried channel, its negative (group mean exactly 0) and two constants +-50 (group variance
fixed to ~1e-4), and the SiLU after it works near x = 4 where it is almost linear (reconstruction
error below 0.01). Limits: depth comes out at 1/8 resolution, bilinearly smoothed. The smoothing
filters need replicate padding (a model's ``vae_decoder_padding: replicate``, which training sets
for a designed VAE): with zero padding they pull the outermost pixels up to a quarter of the way
towards mid-depth, a bright rim around far borders.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from videodepth.models.architectures import SMALL_VAE

# SMALL_VAE's layout (8x down-sampling, 4 latent channels, same scaling factor), made lean.
DESIGNED_VAE = {
    **SMALL_VAE,
    "block_out_channels": (12, 12, 12, 12),
    "layers_per_block": 0,
    "norm_num_groups": 3,
}
CONSTANT = 50.0  # dominates the variance of a 4-channel group, so GroupNorm scales by a constant
GN_BIAS = 4.0  # SiLU is nearly linear around here
CARRIED = (0, 1, 2)


def _silu_slope(x: float) -> float:
    s = torch.sigmoid(torch.tensor(x)).item()
    return s * (1 + x * (1 - s))


def _centre_taps(conv: torch.nn.Conv2d, pairs: list[tuple[int, int, float]]) -> None:
    centre = conv.kernel_size[0] // 2
    for out_channel, in_channel, value in pairs:
        conv.weight.data[out_channel, in_channel, centre, centre] = value


def _carry(conv: torch.nn.Conv2d, gain: float) -> None:
    """Channel 4k gets gain * input k, channel 4k+1 its negative."""
    _centre_taps(conv, [(4 * k, k, gain) for k in CARRIED] + [(4 * k + 1, k, -gain) for k in CARRIED])


def _add_constants(conv: torch.nn.Conv2d) -> None:
    for k in CARRIED:
        conv.bias.data[4 * k + 2], conv.bias.data[4 * k + 3] = CONSTANT, -CONSTANT


def _linear_readout(norm: torch.nn.GroupNorm, conv_out: torch.nn.Conv2d, gain: float) -> None:
    """GroupNorm -> SiLU -> conv_out gives ``gain`` times carried channel 4k on output k."""
    norm.weight.zero_()
    norm.bias.zero_()
    slope, offset = _silu_slope(GN_BIAS), F.silu(torch.tensor(GN_BIAS)).item()
    for k in CARRIED:
        norm.weight.data[4 * k], norm.bias.data[4 * k] = 0.5 * CONSTANT / 2**0.5, GN_BIAS
        scale = gain / (0.5 * slope)
        _centre_taps(conv_out, [(k, 4 * k, scale)])
        conv_out.bias.data[k] = -offset * scale


def _diagonal(conv: torch.nn.Conv2d, kernel: torch.Tensor) -> None:
    channels = torch.arange(conv.out_channels)
    conv.weight.data[channels, channels] = kernel


@torch.no_grad()
def design_vae(vae: AutoencoderKL | None = None) -> AutoencoderKL:
    """Set every weight of a :data:`DESIGNED_VAE` autoencoder (built here if not given)."""
    vae = vae if vae is not None else AutoencoderKL(**DESIGNED_VAE)
    if tuple(vae.config.block_out_channels) != DESIGNED_VAE["block_out_channels"]:
        raise ValueError("design_vae expects the DESIGNED_VAE layout")
    for parameter in vae.parameters():
        parameter.zero_()
    for module in vae.modules():
        if isinstance(module, torch.nn.GroupNorm):
            module.weight.fill_(1.0)
    scaling = vae.config.scaling_factor
    encoder, decoder = vae.encoder, vae.decoder
    _carry(encoder.conv_in, 1.0)
    average = torch.zeros(3, 3)
    average[:2, :2] = 0.25  # stride 2 with (0, 1, 0, 1) padding: exactly 2x2 average pooling
    for block in encoder.down_blocks:
        for down in block.downsamplers or []:
            _diagonal(down.conv, average)
    _add_constants(encoder.mid_block.resnets[-1].conv2)
    _linear_readout(encoder.conv_norm_out, encoder.conv_out, 1.0 / scaling)
    encoder.conv_out.bias.data[4:] = -20.0
    vae.quant_conv.weight.data[torch.arange(8), torch.arange(8), 0, 0] = 1.0
    vae.post_quant_conv.weight.data[torch.arange(4), torch.arange(4), 0, 0] = 1.0
    _carry(decoder.conv_in, scaling)
    smooth = torch.tensor([1.0, 2.0, 1.0]) / 4
    for block in decoder.up_blocks:
        for up in block.upsamplers or []:
            _diagonal(up.conv, torch.outer(smooth, smooth))
    _add_constants(decoder.up_blocks[-1].resnets[-1].conv2)
    _linear_readout(decoder.conv_norm_out, decoder.conv_out, 1.0)
    return vae


def designed_latents(images: torch.Tensor) -> torch.Tensor:
    """What ``design_vae(vae).encode(images).latent_dist.mode() * scaling_factor`` computes, in
    closed form (agrees to ~1e-4: the GroupNorm scale varies by that much with the content).
    Used in training to skip running the full-resolution encoder, a third of the step time."""
    pooled = F.avg_pool2d(images.float(), 8)
    slope, offset = _silu_slope(GN_BIAS), F.silu(torch.tensor(GN_BIAS)).item()
    carried = (F.silu(GN_BIAS + 0.5 * pooled) - offset) / (0.5 * slope)
    return torch.cat([carried, torch.zeros_like(pooled[:, :1])], dim=1)
