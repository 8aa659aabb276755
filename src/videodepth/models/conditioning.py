"""How a model's frames become its conditioning: CLIP tokens and RGB latents, per family.

One implementation for inference (:mod:`videodepth.inference.pipeline`) and training
(:mod:`videodepth.training.trainer`), so that a model is trained on exactly what it is later fed.
Randomness (noise augmentation, posterior samples) is passed in by the caller: inference keys it
to frame indices, training to the step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
    _resize_with_antialiasing,
)

CLIP_SIZE = (224, 224)


def clip_embeddings(image_encoder, feature_extractor, images_01: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings [N, D] of images in [0, 1] already at the encoder's size."""
    pixels = feature_extractor(
        images=images_01,
        do_normalize=True,
        do_center_crop=False,
        do_resize=False,
        do_rescale=False,
        return_tensors="pt",
    ).pixel_values
    parameter = next(image_encoder.parameters())
    return image_encoder(pixels.to(parameter.device, parameter.dtype)).image_embeds


def clip_input(video: torch.Tensor) -> torch.Tensor:
    """Frames in [-1, 1] [N, 3, H, W] as SVD feeds them to CLIP: antialiased to 224x224, in [0, 1]."""
    return (_resize_with_antialiasing(video.float(), CLIP_SIZE) + 1.0) / 2.0


def black_clip_input(device: torch.device | str = "cpu") -> torch.Tensor:
    """The single black frame ChronoDepth encodes instead of the video ("clip_of_zeros")."""
    return torch.zeros(1, 3, *CLIP_SIZE, device=device)


def frame_tokens(model, video: torch.Tensor, embed: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Cross-attention tokens [N, D] for frames in [-1, 1] [N, 3, H, W], by the model's
    ``image_conditioning``: zeros, CLIP of a black frame for every frame, or CLIP of each frame.
    ``embed`` maps CLIP inputs (:func:`clip_input`) to embeddings, so callers choose device and
    offloading (see :func:`clip_embeddings`)."""
    mode = model.config.image_conditioning
    if mode == "none":
        return torch.zeros(len(video), model.unet.config.cross_attention_dim, device=video.device)
    if mode == "clip_of_zeros":
        return embed(black_clip_input(video.device)).expand(len(video), -1)
    return embed(clip_input(video))


def latents_from_posterior(
    posterior, mode: str, scaling_factor: float, eps: torch.Tensor | None = None
) -> torch.Tensor:
    """RGB conditioning latents from the VAE posterior: its mode as SVD uses it ("mode"), the mode
    times the scaling factor ("mode_scaled"), or a sample with the given standard-normal ``eps``
    times the scaling factor ("sample_scaled", ChronoDepth)."""
    if mode == "mode":
        return posterior.mode()
    if mode == "mode_scaled":
        return posterior.mode() * scaling_factor
    if mode == "sample_scaled":
        if eps is None:
            raise ValueError("rgb_latents 'sample_scaled' needs the posterior noise eps")
        return (posterior.mean + posterior.std * eps.to(posterior.mean)) * scaling_factor
    raise ValueError(f"unknown rgb_latents mode {mode!r}")


def concat_for_unet(depth_input: torch.Tensor, rgb_latents: torch.Tensor, order: str) -> torch.Tensor:
    """The UNet's input: noisy depth latents and RGB latents on the channel axis (dim 2 of
    [B, F, C, h, w]) in the family's order."""
    parts = [depth_input, rgb_latents] if order == "depth_first" else [rgb_latents, depth_input]
    return torch.cat(parts, dim=2)


VAE_CHUNK = 32  # frames per VAE encoder call: bounded activation memory on long clips


@torch.no_grad()
def encode_in_chunks(vae, images: torch.Tensor, to_latents: Callable, chunk: int = VAE_CHUNK) -> torch.Tensor:
    """``to_latents(posterior, start)`` of the VAE posterior of ``images`` [N, 3, H, W] encoded
    ``chunk`` frames per call, ``start`` being the index of the chunk's first frame."""
    parts = [
        to_latents(vae.encode(images[i : i + chunk].to(vae.dtype)).latent_dist, i)
        for i in range(0, len(images), chunk)
    ]
    return torch.cat(parts)
