"""The model's denoiser D(x; sigma, cond): what the UNet is fed and what it returns.

One object for inference and training, so that a model is trained on exactly the tensor it is
later fed: the family's conditioning of the frames (noise augmentation, VAE latents, CLIP
tokens, learned detail features), the UNet's input layout, SVD's added time ids, EDM's
preconditioning, classifier-free guidance and the training loss. Random draws come from a
:class:`~videodepth.diffusion.noise.NoiseSource`: inference keys them to frame indices,
training to the step (:class:`~videodepth.diffusion.noise.GeneratorNoise`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from videodepth.diffusion.noise import NoiseSource
from videodepth.diffusion.preconditioning import c_in, c_noise, denoised_from_output, loss_weight
from videodepth.models.bundle import DepthModel
from videodepth.models.conditioning import (
    black_clip_input,
    clip_embeddings,
    clip_input,
    encode_in_chunks,
    latents_from_posterior,
)

# Runs a module where it should run (CPU offload moves it to the accelerator for the call).
Placement = Callable[[torch.nn.Module], contextlib.AbstractContextManager[torch.nn.Module]]
# Frames [N, 3, H, W] in [-1, 1] -> the VAE's conditioning latents [N, C, h, w], replacing the
# posterior step (training's closed form of the designed VAE, a third of its step time).
RgbEncoder = Callable[[torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def in_place(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    yield module


@dataclass
class Conditioning:
    """Per-frame conditioning: ``latents`` [B, F, C, h, w] (the VAE's RGB latents, then any detail
    features) and cross-attention ``tokens`` [B, F, D]."""

    latents: torch.Tensor
    tokens: torch.Tensor

    def unconditional(self) -> Conditioning:
        """The null conditioning of classifier-free guidance."""
        return Conditioning(torch.zeros_like(self.latents), torch.zeros_like(self.tokens))


class Denoiser(torch.nn.Module):
    """The trained part of a :class:`DepthModel` (its UNet and detail encoder, the module's only
    parameters) with the frozen encoders (VAE, CLIP) it conditions on."""

    def __init__(self, model: DepthModel, place: Placement = in_place, rgb_encoder: RgbEncoder | None = None):
        super().__init__()
        self.unet = model.unet
        self.detail_encoder = model.detail_encoder
        self.model = model  # a plain dataclass, so its VAE and CLIP are not parameters of this module
        self.config = model.config
        self.place = place
        self.rgb_encoder = rgb_encoder
        self._black_tokens: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @property
    def dtype(self) -> torch.dtype:
        return getattr(self.unet, "dtype", torch.float32)  # diffusers' models say; a bare module is fp32

    # ------------------------------------------------------------------ conditioning
    def conditioning(self, frames: torch.Tensor, noise: NoiseSource, first_frame: int = 0) -> Conditioning:
        """The conditioning of ``frames`` [B, F, 3, H, W] in [-1, 1]; frame f of each clip draws
        its noise as frame ``first_frame + f``. The frozen encoders run without gradients; the
        detail encoder, which is trained, keeps them when they are enabled."""
        batch, count = frames.shape[:2]
        flat = frames.flatten(0, 1)
        indices = [first_frame + i % count for i in range(len(flat))]
        with torch.no_grad():
            tokens = self.tokens(flat)
            flat = self._augmented(flat, noise, indices)
            latents = self._rgb_latents(flat, noise, indices)
        if self.detail_encoder is not None:
            with self.place(self.detail_encoder) as encoder:
                latents = torch.cat([latents, encoder(flat.to(encoder.dtype)).to(latents)], dim=1)
        return Conditioning(
            latents.reshape(batch, count, *latents.shape[1:]), tokens.reshape(batch, count, -1)
        )

    def tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """Cross-attention tokens [N, D] by the model's ``image_conditioning``: zeros, CLIP of a
        black frame for every frame (encoded once), or CLIP of each frame."""
        mode = self.config.image_conditioning
        if mode == "none":
            return torch.zeros(len(frames), self.unet.config.cross_attention_dim, device=frames.device)
        if mode == "clip_of_zeros":
            key = (frames.device, frames.dtype)
            if key not in self._black_tokens:  # the same token for every frame
                self._black_tokens[key] = self._clip(black_clip_input(frames.device))
            return self._black_tokens[key].expand(len(frames), -1)
        return self._clip(clip_input(frames))

    def _clip(self, images_01: torch.Tensor) -> torch.Tensor:
        with self.place(self.model.image_encoder) as encoder:
            return clip_embeddings(encoder, self.model.feature_extractor, images_01).float()

    def _augmented(self, frames: torch.Tensor, noise: NoiseSource, indices: list[int]) -> torch.Tensor:
        strength = self.config.noise_aug_strength
        if strength <= 0:
            return frames
        shape = tuple(frames.shape[1:])
        augmentation = torch.stack([noise.rgb_augmentation(i, shape) for i in indices])
        return frames + strength * augmentation.to(frames)

    def _rgb_latents(self, frames: torch.Tensor, noise: NoiseSource, indices: list[int]) -> torch.Tensor:
        if self.rgb_encoder is not None:
            return self.rgb_encoder(frames)
        vae, mode = self.model.vae, self.config.rgb_latents

        def to_latents(posterior, start: int) -> torch.Tensor:
            eps = None
            if mode == "sample_scaled":
                shape = tuple(posterior.mean.shape[1:])
                eps = torch.stack(
                    [noise.posterior(i, shape) for i in indices[start : start + len(posterior.mean)]]
                )
            return latents_from_posterior(posterior, mode, vae.config.scaling_factor, eps)

        with self.place(vae):
            return encode_in_chunks(vae, frames, to_latents)

    # ---------------------------------------------------------------------- the UNet
    def unet_input(self, x_in: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """Scaled noisy depth latents and the conditioning latents on the channel axis (dim 2 of
        [B, F, C, h, w]), in the family's order."""
        parts = [x_in, cond.latents] if self.config.concat_order == "depth_first" else [cond.latents, x_in]
        return torch.cat([part.to(self.dtype) for part in parts], dim=2)

    def added_time_ids(self, batch: int, device: torch.device) -> torch.Tensor:
        values = [self.config.fps_id, self.config.motion_bucket_id, self.config.noise_aug_strength]
        return torch.tensor([values], dtype=self.dtype, device=device).expand(batch, 3)

    def network(self, x_in: torch.Tensor, sigma: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """The raw UNet output F for already ``c_in``-scaled latents ``x_in`` [B, F, C, h, w]."""
        with self.place(self.unet) as unet:
            return unet(
                self.unet_input(x_in, cond),
                c_noise(sigma).to(x_in.device),
                encoder_hidden_states=cond.tokens.to(self.dtype),
                added_time_ids=self.added_time_ids(len(x_in), x_in.device),
                return_dict=False,
            )[0].float()

    def forward(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        cond: Conditioning,
        guidance: float = 1.0,
        input_is_scaled: bool = False,
    ) -> torch.Tensor:
        """D(x; sigma) [B, F, C, h, w] with one sigma per frame (``sigma`` [B, F]). With
        ``input_is_scaled`` the latents arrive already multiplied by ``c_in`` (ChronoDepth's
        pre-scaling sampler)."""
        x_in = x if input_is_scaled else c_in(sigma) * x
        output = self.network(x_in, sigma, cond)
        if guidance != 1.0:
            unconditional = self.network(x_in, sigma, cond.unconditional())
            output = unconditional + guidance * (output - unconditional)
        return denoised_from_output(output, x, sigma)

    # ---------------------------------------------------------------------- training
    def loss(
        self,
        x0: torch.Tensor,
        cond: Conditioning,
        sigma: torch.Tensor,
        noise: torch.Tensor,
        weight: torch.Tensor | None = None,
        scale_shift_weight: float = 0.0,
        through: torch.nn.Module | None = None,
    ) -> torch.Tensor:
        """EDM's lambda(sigma)-weighted squared error of D(x0 + sigma noise; sigma) against ``x0``.

        ``x0``, ``noise`` [B, F, C, h, w]; ``sigma`` [B, F]; ``weight`` (optional) [B, F, 1, h, w]
        per latent cell, e.g. its valid-pixel fraction; the result is the weighted mean over all
        latent elements. ``scale_shift_weight`` > 0 adds that times the same error after
        :func:`align_scale_shift` (the plain term keeps the denoiser calibrated for multi-step
        sampling, the aligned one stresses relative depth). ``through`` is the module whose call
        evaluates D: this denoiser's DDP wrapper in multi-process training (gradients are only
        synchronised through its forward), by default the denoiser itself.
        """
        x = x0 + sigma[..., None, None, None] * noise
        denoised = (through or self)(x, sigma, cond)
        lam = loss_weight(sigma)[..., None, None, None]
        loss = weighted_mean(lam * (denoised - x0) ** 2, weight)
        if scale_shift_weight > 0:
            aligned = align_scale_shift(denoised, x0, weight)
            loss = loss + scale_shift_weight * weighted_mean(lam * (aligned - x0) ** 2, weight)
        return loss


def align_scale_shift(
    prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
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


def weighted_mean(error: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return error.mean()
    weight = weight.expand_as(error)
    return (error * weight).sum() / weight.sum().clamp_min(1e-8)
