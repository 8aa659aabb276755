"""The training objective: EDM denoising score matching in the VAE's latent space.

For clean depth latents x0 and noise eps, x = x0 + sigma eps, and the preconditioned denoiser
D(x; sigma) = c_skip x + c_out F(c_in x; c_noise) (SVD's v-prediction parametrisation) is
trained with  E[ lambda(sigma) * || D(x; sigma) - x0 ||^2 ],  lambda = (1 + sigma^2) / sigma^2.
sigma is drawn as ln sigma ~ N(P_mean, P_std^2), once per clip (DepthCrafter) or once per
frame (ChronoDepth); the RGB latents of each frame are concatenated to its noisy depth latent.
Optionally a fraction of the draws is replaced by the sampler's first noise level (see
:func:`draw_sigmas`), and a second, scale-and-shift-invariant error term (see
:func:`align_scale_shift`) weights a clip's relative depth above its global level and contrast.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from videodepth.diffusion.preconditioning import c_in, c_noise, denoised_from_output, loss_weight
from videodepth.diffusion.schedules import SVD_SCHEDULER_CONFIG, sample_training_sigmas
from videodepth.models.conditioning import concat_for_unet


def draw_sigmas(batch: int, frames: int, per: str, p_mean: float, p_std: float,
                generator: torch.Generator | None = None, top_fraction: float = 0.0,
                sigma_top: float = SVD_SCHEDULER_CONFIG["sigma_max"]) -> torch.Tensor:
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


def fill_invalid_nearest(disparity: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Replace invalid pixels by the value of the nearest valid pixel of the same frame.

    ``disparity`` and ``valid`` are [N, 1, H, W]; frames without any valid pixel are left as they
    are. Holes then encode as smooth continuations instead of a jump to the far end.
    """
    out = disparity.clone()
    for i in range(len(disparity)):
        mask = valid[i, 0].cpu().numpy()
        if mask.all() or not mask.any():
            continue
        _, (rows, cols) = ndimage.distance_transform_edt(~mask, return_indices=True)
        frame = disparity[i, 0].cpu().numpy()
        out[i, 0] = torch.from_numpy(np.ascontiguousarray(frame[rows, cols])).to(out)
    return out


def latent_cell_weights(valid: torch.Tensor, factor: int) -> torch.Tensor:
    """Fraction of valid pixels under each latent cell: [N, 1, H, W] -> [N, 1, H/f, W/f]."""
    return F.avg_pool2d(valid.float(), kernel_size=factor, stride=factor)


@torch.no_grad()
def encode_in_chunks(vae, images: torch.Tensor, to_latents: Callable, chunk: int = 32) -> torch.Tensor:
    """``to_latents`` of the VAE posterior of ``images`` [N, 3, H, W], ``chunk`` frames per encoder
    call (bounded activation memory for long clips)."""
    parts = [to_latents(vae.encode(images[i : i + chunk].to(vae.dtype)).latent_dist) for i in range(0, len(images), chunk)]
    return torch.cat(parts)


def encode_scaled(vae, images: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """VAE posterior mode times the scaling factor, [N, 3, H, W] -> [N, 4, h, w]."""
    return encode_in_chunks(vae, images, lambda posterior: posterior.mode() * vae.config.scaling_factor, chunk)


class Denoiser(torch.nn.Module):
    """What a UNet stage trains: the UNet and, when the model has one, its detail encoder, in one
    module so that one forward call (what DDP synchronises) runs both."""

    def __init__(self, unet: torch.nn.Module, detail_encoder: torch.nn.Module | None = None):
        super().__init__()
        self.unet, self.detail_encoder = unet, detail_encoder

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                added_time_ids: torch.Tensor, return_dict: bool = False, images: torch.Tensor | None = None):
        """As the UNet; ``images`` [B, F, 3, H, W] feed the detail encoder, if any."""
        if self.detail_encoder is not None:
            features = self.detail_encoder(images.flatten(0, 1).to(sample.dtype))
            sample = torch.cat([sample, features.reshape(*sample.shape[:2], *features.shape[1:])], dim=2)
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                         added_time_ids=added_time_ids, return_dict=return_dict)


def align_scale_shift(prediction: torch.Tensor, target: torch.Tensor,
                      weight: torch.Tensor | None = None) -> torch.Tensor:
    """``prediction`` after the weighted least-squares scale and shift that best fit it to
    ``target``, one pair per clip and channel over all frames and cells ([B, F, C, h, w]; ``weight``
    broadcasts to it). The evaluation protocol aligns each video this way, so an error measured
    after it counts only what the protocol can see (MiDaS's scale-and-shift-invariant loss). The
    fit is differentiable; a constant target or prediction gets scale 0 (the target's mean)."""
    weight = torch.ones_like(prediction) if weight is None else weight.expand_as(prediction)
    dims = (1, 3, 4)
    total = weight.sum(dims, keepdim=True).clamp_min(1e-8)
    mean_p = (weight * prediction).sum(dims, keepdim=True) / total
    mean_t = (weight * target).sum(dims, keepdim=True) / total
    centred = prediction - mean_p
    covariance = (weight * centred * (target - mean_t)).sum(dims, keepdim=True) / total
    variance = (weight * centred**2).sum(dims, keepdim=True) / total
    return covariance / variance.clamp_min(1e-8) * centred + mean_t


def denoising_loss(
    denoiser: torch.nn.Module,
    x0: torch.Tensor,
    rgb_latents: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    tokens: torch.Tensor,
    added_time_ids: torch.Tensor,
    weight: torch.Tensor | None = None,
    images: torch.Tensor | None = None,
    scale_shift_weight: float = 0.0,
    concat_order: str = "depth_first",
) -> torch.Tensor:
    """lambda(sigma)-weighted squared error of the denoised estimate.

    ``x0``, ``rgb_latents``, ``noise`` [B, F, C, h, w]; ``sigma`` [B, F]; ``tokens`` [B, F, D];
    ``weight`` (optional) [B, F, 1, h, w] per latent cell, e.g. its valid-pixel fraction. The
    result is the weighted mean over all latent elements. ``denoiser`` is a UNet or a
    :class:`Denoiser`; ``images`` (the frames, [B, F, 3, H, W]) go to a Denoiser's detail encoder.
    ``scale_shift_weight`` > 0 adds that times the same error after :func:`align_scale_shift`
    (meaningful where latents are affine in depth, as with the designed VAE): the plain term keeps
    the denoiser calibrated for multi-step sampling, the aligned one stresses relative depth.
    ``concat_order`` is the model family's (models.conditioning.concat_for_unet).
    """
    x = x0 + sigma[..., None, None, None] * noise
    network_input = concat_for_unet(c_in(sigma) * x, rgb_latents, concat_order)
    extra = {} if images is None else {"images": images}
    output = denoiser(network_input, c_noise(sigma), encoder_hidden_states=tokens, added_time_ids=added_time_ids,
                      return_dict=False, **extra)[0]
    denoised = denoised_from_output(output.float(), x, sigma)
    lam = loss_weight(sigma)[..., None, None, None]
    loss = _weighted_mean(lam * (denoised - x0) ** 2, weight)
    if scale_shift_weight > 0:
        aligned = align_scale_shift(denoised, x0, weight)
        loss = loss + scale_shift_weight * _weighted_mean(lam * (aligned - x0) ** 2, weight)
    return loss


def _weighted_mean(error: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return error.mean()
    weight = weight.expand_as(error)
    return (error * weight).sum() / weight.sum().clamp_min(1e-8)
