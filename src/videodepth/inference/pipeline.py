"""The video depth pipeline: a :class:`~videodepth.models.bundle.DepthModel`'s denoiser composed
with a noise schedule, the family's sampler and a long-video strategy, and the window loop that
runs them.

It encodes RGB frames to conditioning (:class:`~videodepth.models.denoiser.Denoiser`), samples
each window of the strategy's plan with memory bounded by the window (the loop's parts are in
:mod:`videodepth.inference.windows`), and decodes depth latents back to disparity in [0, 1].
``pipeline(frames)`` predicts a clip held in memory; files, resuming and outputs are
:mod:`videodepth.inference.runner`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLTemporalDecoder
from tqdm.auto import tqdm

from videodepth.diffusion.noise import NoiseSource
from videodepth.diffusion.schedules import sampling_schedule
from videodepth.errors import InputError
from videodepth.inference.settings import RunSettings
from videodepth.inference.windows import (
    AlignedDecoder,
    ConditionCache,
    DepthSink,
    PipelineSampler,
    StageTimer,
)
from videodepth.models.bundle import SVD_HUB_ID, DepthModel
from videodepth.models.denoiser import Conditioning, Denoiser


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
        model.eval().to(device="cpu" if cpu_offload else self.device, dtype=dtype)
        # SVD's VAE is unstable in fp16 (force_upcast); keep it in fp32 where its config asks.
        if dtype == torch.float16 and getattr(model.vae.config, "force_upcast", False):
            model.vae.to(dtype=torch.float32)
        self.denoiser = Denoiser(model, place=self._using)

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
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        video = (video.to(torch.float32) / 255.0 * 2.0 - 1.0).to(self.device)
        cond = self.denoiser.conditioning(video.unsqueeze(0), noise, first_frame)
        return Conditioning(cond.latents.to(self.dtype), cond.tokens.to(self.dtype))

    # --------------------------------------------------------------------------- denoise
    @torch.no_grad()
    def denoise(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        cond: Conditioning,
        guidance: float = 1.0,
        input_is_scaled: bool = False,
    ) -> torch.Tensor:
        """D(x; sigma) with one sigma per frame (``sigma`` [1, F])."""
        return self.denoiser(x, sigma, cond, guidance, input_is_scaled)

    # ---------------------------------------------------------------------------- decode
    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Depth latents [N, 4, h, w] -> disparity-like depth in [0, 1], float32 [N, H, W]."""
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

    # ------------------------------------------------------------------------ the loop
    def run(
        self,
        open_frames: Callable[[int], Iterator[np.ndarray]],
        num_frames: int,
        frame_size: tuple[int, int],
        settings: RunSettings,
        sink: DepthSink,
        resume_state: dict | None = None,
        checkpoint: Callable[[dict], None] | None = None,
        progress: bool = True,
        timer: StageTimer | None = None,
    ) -> None:
        """Predict depth for ``num_frames`` frames of size ``frame_size`` (multiples of
        :attr:`size_multiple`), window by window, in memory bounded by the window.
        ``open_frames(start)`` yields uint8 RGB frames from ``start`` on; ``sink`` receives decoded
        depth as soon as it is final. After each window ``checkpoint`` receives a state from which
        ``resume_state`` continues exactly. ``timer`` collects this job's stage times."""
        height, width = frame_size
        multiple = self.size_multiple
        if height % multiple or width % multiple or height < multiple or width < multiple:
            raise InputError(
                f"frame size {width}x{height} must be positive multiples of {multiple} for this model"
            )
        if num_frames < 1:
            raise InputError("the video has no frames")
        timer = timer or StageTimer(self.device)
        strategy = settings.make_strategy()
        windows = strategy.plan(num_frames)
        noise = settings.make_noise(num_frames, (3, height, width))
        schedule = sampling_schedule(self.model.scheduler, settings.steps)

        first_window = 0 if resume_state is None else resume_state["next_window"]
        cache = ConditionCache(
            self,
            open_frames,
            windows[min(first_window, len(windows) - 1)].frames.start,
            num_frames,
            noise,
            settings.decode_chunk_size,
            timer,
        )
        sampler = PipelineSampler(
            self, schedule, noise, cache, self.latent_shape(height, width), settings.guidance, timer
        )
        decoder = AlignedDecoder(self, settings.decode_chunk_size, sink, timer)
        if resume_state is None:
            state = strategy.initial_state(sampler, num_frames)
        else:
            state = resume_state["strategy"]
            noise.load_state_dict(resume_state["noise"])
            decoder.load_state_dict(resume_state["decoder"])

        done = windows[first_window].emits.start if first_window < len(windows) else num_frames
        with tqdm(
            total=num_frames, initial=done, unit="frame", desc=strategy.name, disable=not progress
        ) as bar:
            for index in range(first_window, len(windows)):
                window = windows[index]
                latents = strategy.run(sampler, window, state)
                decoder.push(window.emits.start, latents)
                if index + 1 < len(windows):
                    cache.release_before(windows[index + 1].frames.start)
                bar.update(len(window.emits))
                if checkpoint is not None and index + 1 < len(windows):
                    checkpoint(
                        {
                            "next_window": index + 1,
                            "strategy": state,
                            "noise": noise.state_dict(),
                            "decoder": decoder.state_dict(),
                        }
                    )
        decoder.flush()

    def __call__(self, frames: np.ndarray, settings: RunSettings | None = None, **overrides) -> np.ndarray:
        """Depth for a clip held in memory: ``frames`` uint8 [T, H, W, 3] -> float32 [T, H, W] in
        [0, 1] (near = 1), normalised once for the whole clip. ``settings`` (default: the model's)
        with keyword ``overrides`` of :class:`~videodepth.inference.settings.RunSettings` fields
        applied; files and long videos go through :func:`videodepth.inference.runner.run_video`
        instead, which streams and writes."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise InputError(
                f"expected uint8 frames of shape [T, H, W, 3], got {frames.dtype} {frames.shape}"
            )
        if settings is None:
            settings = RunSettings.for_model(self.config, **overrides)
        elif overrides:
            settings = dataclasses.replace(settings, **overrides)
        depth = np.zeros(frames.shape[:3], np.float32)

        def keep(start: int, chunk: np.ndarray) -> None:
            depth[start : start + len(chunk)] = chunk

        self.run(
            lambda start: iter(frames[start:]), len(frames), frames.shape[1:3], settings, keep, progress=False
        )
        return normalize_min_max(depth)


def normalize_min_max(depth: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """One affine normalisation for the whole video (no per-frame flicker)."""
    lo = float(depth.min()) if lo is None else lo
    hi = float(depth.max()) if hi is None else hi
    return ((depth - lo) / max(hi - lo, 1e-12)).astype(np.float32)
