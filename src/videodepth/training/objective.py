"""The training objective's parts: noise levels, loss weights of invalid pixels, depth latents.

The loss itself is :meth:`videodepth.models.denoiser.Denoiser.loss`, beside the forward pass it
trains: EDM denoising score matching in the VAE's latent space.

For clean depth latents x0 and noise eps, x = x0 + sigma eps, and the preconditioned denoiser
D(x; sigma) = c_skip x + c_out F(c_in x; c_noise) (SVD's v-prediction parametrisation) is
trained with  E[ lambda(sigma) * || D(x; sigma) - x0 ||^2 ],  lambda = (1 + sigma^2) / sigma^2.
sigma is drawn as ln sigma ~ N(P_mean, P_std^2), once per clip (DepthCrafter) or once per
frame (ChronoDepth); the RGB latents of each frame are concatenated to its noisy depth latent.
Optionally a fraction of the draws is replaced by the sampler's first noise level (see
:func:`draw_sigmas`), and a second, scale-and-shift-invariant error term (see
:func:`videodepth.models.denoiser.align_scale_shift`) weights a clip's relative depth above its global level and contrast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from videodepth.diffusion.schedules import SVD_SCHEDULER_CONFIG, sample_training_sigmas
from videodepth.models.conditioning import encode_in_chunks


def draw_sigmas(
    batch: int,
    frames: int,
    per: str,
    p_mean: float,
    p_std: float,
    generator: torch.Generator | None = None,
    top_fraction: float = 0.0,
    sigma_top: float = SVD_SCHEDULER_CONFIG["sigma_max"],
) -> torch.Tensor:
    """[B, F] noise levels: one per clip repeated over frames ("clip") or one per frame ("frame").

    With ``top_fraction`` > 0, each draw is replaced by ``sigma_top`` with that probability.
    Why: a few-step sampler evaluates the network first at the scheduler's sigma_max (700 for
    SVD's), which ln sigma ~ N(2.5, 1) reaches once in about 40,000 draws; with 2 steps that first
    evaluation is the whole prediction (the second, at sigma 0.002, returns its input).
    """
    if per not in ("clip", "frame"):
        raise ValueError(f"unknown noise mode '{per}'; choose clip or frame")
    shape = (batch, 1) if per == "clip" else (batch, frames)
    sigma = sample_training_sigmas(shape, p_mean, p_std, generator)
    if top_fraction > 0:  # drawn only when asked, so runs without it keep their random stream
        sigma = torch.where(torch.rand(shape, generator=generator) < top_fraction, sigma_top, sigma)
    return sigma.expand(batch, frames).contiguous()


def latent_cell_weights(valid: torch.Tensor, factor: int) -> torch.Tensor:
    """Fraction of valid pixels under each latent cell: [N, 1, H, W] -> [N, 1, H/f, W/f]."""
    return F.avg_pool2d(valid.float(), kernel_size=factor, stride=factor)


def encode_scaled(vae, images: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """VAE posterior mode times the scaling factor, [N, 3, H, W] -> [N, 4, h, w]."""
    return encode_in_chunks(
        vae, images, lambda posterior, start: posterior.mode() * vae.config.scaling_factor, chunk
    )
