"""The video depth pipeline: a :class:`~videodepth.models.bundle.DepthModel` composed with a
noise schedule, an Euler sampler and a long-video strategy.

It encodes RGB frames to conditioning latents (and CLIP tokens where the family uses them),
evaluates the preconditioned denoiser with optional classifier-free guidance, and decodes
depth latents back to disparity in [0, 1]. Streaming, windowing and files live elsewhere
(:mod:`videodepth.inference.engine`, :mod:`videodepth.inference.runner`).
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLTemporalDecoder

from videodepth.diffusion.noise import NoiseSource
from videodepth.diffusion.preconditioning import c_in, c_noise, denoised_from_output
from videodepth.models.bundle import SVD_HUB_ID, DepthModel
from videodepth.models.conditioning import (
    clip_embeddings,
    concat_for_unet,
    frame_tokens,
    latents_from_posterior,
)


@dataclass
class Conditioning:
    """Per-frame conditioning of a window: RGB latents [1, F, C, h, w] (the VAE's latents, then any
    detail features) and tokens [1, F, D]."""

    latents: torch.Tensor
    tokens: torch.Tensor


class StageTimer:
    """Wall-clock milliseconds spent in encode / denoise / decode, for the run summary."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, stage: str, device: torch.device):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        yield
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.seconds[stage] += time.perf_counter() - start


class VideoDepthPipeline:
    def __init__(
        self,
        model: DepthModel,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        cpu_offload: bool = False,
    ):
        self.model = model
        self.config = model.config
        self.device = torch.device(device)
        self.dtype = dtype
        self.cpu_offload = cpu_offload
        self.timer = StageTimer()
        self._zero_image_token: torch.Tensor | None = None
        model.eval().to(device="cpu" if cpu_offload else self.device, dtype=dtype)
        # SVD's VAE is unstable in fp16 (force_upcast); keep it in fp32 where its config asks.
        if dtype == torch.float16 and getattr(model.vae.config, "force_upcast", False):
            model.vae.to(dtype=torch.float32)

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path,
        family: str = "auto",
        base: str | Path = SVD_HUB_ID,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        cpu_offload: bool = False,
    ) -> VideoDepthPipeline:
        return cls(DepthModel.from_pretrained(model, family, base, dtype), device, dtype, cpu_offload)

    def save_pretrained(self, folder: str | Path) -> None:
        self.model.save_pretrained(folder)

    # ----------------------------------------------------------------------------- sizes
    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.model.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (VAE down-sampling times UNet down-sampling)."""
        return self.vae_scale_factor * 2 ** (len(self.model.unet.config.block_out_channels) - 1)

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        channels = self.model.vae.config.latent_channels
        return channels, height // self.vae_scale_factor, width // self.vae_scale_factor

    @contextlib.contextmanager
    def _using(self, module: torch.nn.Module):
        """Model-level CPU offload: a module visits the accelerator only while it is used."""
        if not self.cpu_offload:
            yield module
            return
        module.to(self.device)
        try:
            yield module
        finally:
            module.to("cpu")

    # ---------------------------------------------------------------------------- encode
    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray, first_frame: int, noise: NoiseSource) -> Conditioning:
        """``frames`` uint8 [N, H, W, 3] (consecutive, starting at ``first_frame``)."""
        with self.timer("encode", self.device):
            video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
            video = (video.to(torch.float32) / 255.0 * 2.0 - 1.0).to(self.device)
            tokens = self._image_tokens(video)
            latents = self._rgb_latents(video, first_frame, noise)
        return Conditioning(latents=latents.unsqueeze(0), tokens=tokens.unsqueeze(0))

    def _image_tokens(self, video: torch.Tensor) -> torch.Tensor:
        if self.config.image_conditioning != "clip_of_zeros":
            return frame_tokens(self.model, video, self._clip).to(self.dtype)
        if self._zero_image_token is None:  # the same token for every frame: encode it once per run
            self._zero_image_token = frame_tokens(self.model, video[:1], self._clip).to(self.dtype)
        return self._zero_image_token.expand(len(video), -1)

    def _clip(self, images_01: torch.Tensor) -> torch.Tensor:
        with self._using(self.model.image_encoder) as encoder:
            return clip_embeddings(encoder, self.model.feature_extractor, images_01)

    def _rgb_latents(self, video: torch.Tensor, first_frame: int, noise: NoiseSource) -> torch.Tensor:
        strength = self.config.noise_aug_strength
        if strength > 0:
            augmentation = torch.stack(
                [noise.rgb_augmentation(first_frame + i, tuple(video.shape[1:])) for i in range(len(video))]
            )
            video = video + strength * augmentation.to(video)
        vae = self.model.vae
        with self._using(vae):
            posterior = vae.encode(video.to(vae.dtype)).latent_dist
        mode = self.config.rgb_latents
        eps = None
        if mode == "sample_scaled":
            eps = torch.stack([noise.posterior(first_frame + i, tuple(posterior.mean.shape[1:]))
                               for i in range(len(video))])
        latents = latents_from_posterior(posterior, mode, vae.config.scaling_factor, eps)
        if self.model.detail_encoder is not None:
            with self._using(self.model.detail_encoder) as encoder:
                latents = torch.cat([latents, encoder(video.to(encoder.dtype)).to(latents)], dim=1)
        return latents.to(self.dtype)

    # --------------------------------------------------------------------------- denoise
    def added_time_ids(self) -> torch.Tensor:
        values = [self.config.fps_id, self.config.motion_bucket_id, self.config.noise_aug_strength]
        return torch.tensor([values], dtype=self.dtype, device=self.device)

    def network(
        self, x_in: torch.Tensor, sigma: torch.Tensor, cond: Conditioning, guidance: float = 1.0
    ) -> torch.Tensor:
        """Raw UNet output F for the (already c_in-scaled) latents ``x_in`` [1, F, 4, h, w]."""

        def evaluate(rgb: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
            with self._using(self.model.unet) as unet:
                return unet(
                    concat_for_unet(x_in, rgb, self.config.concat_order).to(self.dtype), c_noise(sigma).to(self.device),
                    encoder_hidden_states=tokens, added_time_ids=self.added_time_ids(), return_dict=False,
                )[0].float()

        output = evaluate(cond.latents, cond.tokens)
        if guidance != 1.0:
            unconditional = evaluate(torch.zeros_like(cond.latents), torch.zeros_like(cond.tokens))
            output = unconditional + guidance * (output - unconditional)
        return output

    @torch.no_grad()
    def denoise(
        self, x: torch.Tensor, sigma: torch.Tensor, cond: Conditioning, guidance: float = 1.0,
        input_is_scaled: bool = False,
    ) -> torch.Tensor:
        """D(x; sigma) with one sigma per frame (``sigma`` [1, F])."""
        with self.timer("denoise", self.device):
            x_in = x if input_is_scaled else c_in(sigma) * x
            return denoised_from_output(self.network(x_in, sigma, cond, guidance), x, sigma)

    # ---------------------------------------------------------------------------- decode
    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Depth latents [N, 4, h, w] -> disparity-like depth in [0, 1], float32 [N, H, W]."""
        with self.timer("decode", self.device):
            vae = self.model.vae
            z = (latents / vae.config.scaling_factor).to(self.device, vae.dtype)
            with self._using(vae):
                if isinstance(vae, AutoencoderKLTemporalDecoder):
                    frames = vae.decode(z, num_frames=len(z)).sample
                else:
                    frames = vae.decode(z).sample
            frames = frames.float()
            if self.config.clamp_before_channel_mean:
                depth = (frames / 2 + 0.5).clamp(0, 1).mean(dim=1)
            else:
                depth = (frames.mean(dim=1).clamp(-1, 1) + 1) / 2
        return depth.cpu().numpy()

    # ------------------------------------------------------------------------ in memory
    def __call__(self, frames: np.ndarray, **settings) -> np.ndarray:
        """Depth for a clip held in memory: ``frames`` uint8 [T, H, W, 3] -> float32 [T, H, W]
        in [0, 1] (near = 1), normalised once for the whole clip. Keyword ``settings`` are those
        of :class:`videodepth.inference.engine.RunSettings`; files and long videos go through
        :func:`videodepth.inference.runner.run_video` instead, which streams."""
        from videodepth.inference.engine import RunSettings, predict_in_memory

        return predict_in_memory(self, frames, RunSettings.for_model(self.config, **settings))
