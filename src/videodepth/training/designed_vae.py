"""A hand-set ("designed") initialisation of the small AutoencoderKL: 8x8 average pooling in,
bilinear up-sampling out.

Why: on this project's 2-core CPU a learned VAE of this size trains at about one 64x64 image a
second, far too slow for the time we had, and a diffusion UNet can only learn from latents that
carry the image. Every weight is set so that, with the SMALL_VAE architecture unchanged:

- encoder: each residual block is the identity (its last convolution is zero); each
  down-sampler averages 2x2 pixels; the latent mean of channel k (k = 0, 1, 2) is the 8x8 mean
  of input channel k divided by the scaling factor, so ``mode() * scaling_factor`` is the pooled
  image in [-1, 1] (unit-range latents, as EDM's sigma_data = 1 assumes); channel 3 is zero;
- decoder: channel k is up-sampled bilinearly (nearest x2 then a [1, 2, 1] / 4 filter, three
  times), then the last GroupNorm (one channel per group) standardises it per image and the
  output is 0.4 times that standardised map.

Consequences (documented in docs/TRAINING.md): depth is reconstructed at 1/8 resolution, the
decoder removes each frame's mean and scale of disparity (harmless for one frame since the
pipeline normalises depth anyway, a source of flicker across frames), and borders get about a
quarter darker over a few pixels (zero padding of the filters). The GroupNorm layers that
would otherwise normalise away the content are neutralised by pairing each carried channel
with its negative and with two large constant channels in the same group.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

CONSTANT = 50.0  # dominates the variance of a 4-channel group, so GroupNorm scales by a constant
GN_BIAS = 4.0  # SiLU is nearly linear around here


def _silu_slope(x: float) -> float:
    s = torch.sigmoid(torch.tensor(x)).item()
    return s * (1 + x * (1 - s))


def _identity_taps(conv: torch.nn.Conv2d, pairs: list[tuple[int, int, float]]) -> None:
    centre = conv.kernel_size[0] // 2
    for out_channel, in_channel, value in pairs:
        conv.weight.data[out_channel, in_channel, centre, centre] = value


def _embed_shortcuts(blocks) -> None:
    """Channel-changing residual shortcuts (1x1) copy the first channels through."""
    for block in blocks:
        for resnet in block.resnets:
            shortcut = getattr(resnet, "conv_shortcut", None)
            if shortcut is not None:
                count = min(shortcut.in_channels, shortcut.out_channels)
                shortcut.weight.data[torch.arange(count), torch.arange(count), 0, 0] = 1.0


@torch.no_grad()
def design_vae(vae: AutoencoderKL) -> AutoencoderKL:
    """Set every weight of ``vae`` (SMALL_VAE layout: 4 levels, 4 latent channels)."""
    for parameter in vae.parameters():
        parameter.zero_()
    for module in vae.modules():  # keep GroupNorm scales at 1 unless set below
        if isinstance(module, torch.nn.GroupNorm):
            module.weight.fill_(1.0)
    scaling = vae.config.scaling_factor
    encoder, decoder = vae.encoder, vae.decoder
    carried = (0, 1, 2)
    # Encoder: channel 4k carries input channel k, 4k+1 its negative, 4k+2 / 4k+3 +-CONSTANT.
    _identity_taps(encoder.conv_in, [(4 * k, k, 1.0) for k in carried] + [(4 * k + 1, k, -1.0) for k in carried])
    _embed_shortcuts(encoder.down_blocks)
    for block in encoder.down_blocks:
        for down in block.downsamplers or []:
            channels = down.conv.out_channels
            down.conv.weight.data[torch.arange(channels), torch.arange(channels), :2, :2] = 0.25
    last = encoder.mid_block.resnets[-1].conv2
    for k in carried:
        last.bias.data[4 * k + 2], last.bias.data[4 * k + 3] = CONSTANT, -CONSTANT
    group_std = CONSTANT / 2**0.5
    norm = encoder.conv_norm_out
    norm.weight.zero_()
    slope, offset = _silu_slope(GN_BIAS), F.silu(torch.tensor(GN_BIAS)).item()
    for k in carried:
        norm.weight.data[4 * k], norm.bias.data[4 * k] = 0.5 * group_std, GN_BIAS
        # mean_k = (silu(4 + x/2) - silu(4)) / (slope / 2) / scaling ~= x / scaling
        gain = 1.0 / (0.5 * slope) / scaling
        _identity_taps(encoder.conv_out, [(k, 4 * k, gain)])
        encoder.conv_out.bias.data[k] = -offset * gain
    encoder.conv_out.bias.data[4:] = -20.0  # log-variance: a near-deterministic posterior
    vae.quant_conv.weight.data[torch.arange(8), torch.arange(8), 0, 0] = 1.0
    vae.post_quant_conv.weight.data[torch.arange(4), torch.arange(4), 0, 0] = 1.0
    # Decoder: channel k carries latent channel k; bilinear up-sampling; standardise; scale.
    _identity_taps(decoder.conv_in, [(k, k, 1.0) for k in carried])
    _embed_shortcuts(decoder.up_blocks)
    smooth = torch.tensor([1.0, 2.0, 1.0]) / 4
    for block in decoder.up_blocks:
        for up in block.upsamplers or []:
            channels = up.conv.out_channels
            up.conv.weight.data[torch.arange(channels), torch.arange(channels)] = torch.outer(smooth, smooth)
    norm = decoder.conv_norm_out
    norm.weight.zero_()
    for k in carried:
        norm.weight.data[k], norm.bias.data[k] = 0.25, GN_BIAS
        gain = 0.4 / (0.25 * slope)
        _identity_taps(decoder.conv_out, [(k, k, gain)])
        decoder.conv_out.bias.data[k] = -offset * gain
    return vae


def designed_latents(images: torch.Tensor) -> torch.Tensor:
    """What ``design_vae(vae).encode(images).latent_dist.mode() * scaling_factor`` computes, in
    closed form (agrees to ~1e-4: the GroupNorm scale varies by that much with the content).
    Used in training to skip running the full-resolution encoder, a third of the step time."""
    pooled = F.avg_pool2d(images.float(), 8)
    slope, offset = _silu_slope(GN_BIAS), F.silu(torch.tensor(GN_BIAS)).item()
    carried = (F.silu(GN_BIAS + 0.5 * pooled) - offset) / (0.5 * slope)
    return torch.cat([carried, torch.zeros_like(pooled[:, :1])], dim=1)
