"""The parts of the pipeline's window loop that keep memory bounded by the window.

Frames are pulled from an iterator only when a window needs them and are dropped (as
conditioning latents) once no later window will (:class:`ConditionCache`); final depth latents
are decoded in chunks aligned to the video's start (the temporal VAE decoder mixes frames within
a chunk, so the alignment must not depend on windowing) and handed to a sink as soon as they are
decoded (:class:`AlignedDecoder`). :class:`PipelineSampler` is what a strategy samples with.
Each part times its stage on the job's :class:`StageTimer`.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np
import torch

from videodepth.diffusion.noise import NoiseSource
from videodepth.diffusion.samplers import BeforeStep, sampler_for
from videodepth.errors import InputError
from videodepth.models.config import DepthModelConfig
from videodepth.models.denoiser import Conditioning

DepthSink = Callable[[int, np.ndarray], None]  # (first frame index, depth [n, H, W] in [0, 1])


class WindowPipeline(Protocol):
    """What the loop's parts need of the pipeline (:class:`~videodepth.inference.pipeline.VideoDepthPipeline`)."""

    device: torch.device
    config: DepthModelConfig

    def encode_frames(self, frames: np.ndarray, first_frame: int, noise: NoiseSource) -> Conditioning: ...
    def denoise(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        cond: Conditioning,
        guidance: float = 1.0,
        input_is_scaled: bool = False,
    ) -> torch.Tensor: ...
    def decode(self, latents: torch.Tensor) -> np.ndarray: ...


class StageTimer:
    """Wall-clock seconds one job spends in encode / denoise / decode, for its summary."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, stage: str):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds[stage] += time.perf_counter() - start


class ConditionCache:
    """Encodes frames on first use and forgets them when released.

    Frames are encoded in batches aligned to multiples of ``chunk`` counted from frame 0, so
    that every frame is always encoded in the same company (batch composition can change CPU
    kernels' rounding) and a resumed run reproduces an uninterrupted one bit for bit.
    """

    def __init__(
        self,
        pipeline: WindowPipeline,
        open_frames: Callable[[int], Iterator[np.ndarray]],
        first_frame: int,
        num_frames: int,
        noise: NoiseSource,
        chunk: int,
        timer: StageTimer,
    ):
        self.pipeline, self.noise, self.chunk, self.num_frames = pipeline, noise, chunk, num_frames
        self.timer = timer
        self.next_frame = first_frame - first_frame % chunk
        self.frames = open_frames(self.next_frame)
        self.latents: dict[int, torch.Tensor] = {}
        self.tokens: dict[int, torch.Tensor] = {}

    def _encode_until(self, stop: int) -> None:
        while self.next_frame < stop:
            batch_stop = min(self.next_frame - self.next_frame % self.chunk + self.chunk, self.num_frames)
            batch = []
            for _ in range(batch_stop - self.next_frame):
                frame = next(self.frames, None)
                if frame is None:
                    raise InputError(
                        f"the video ended at frame {self.next_frame + len(batch)}, earlier than announced"
                    )
                batch.append(frame)
            with self.timer("encode"):
                cond = self.pipeline.encode_frames(np.stack(batch), self.next_frame, self.noise)
            for i in range(len(batch)):
                self.latents[self.next_frame + i] = cond.latents[0, i]
                self.tokens[self.next_frame + i] = cond.tokens[0, i]
            self.next_frame += len(batch)

    def get(self, frames: range) -> Conditioning:
        self._encode_until(frames.stop)
        return Conditioning(
            latents=torch.stack([self.latents[i] for i in frames]).unsqueeze(0),
            tokens=torch.stack([self.tokens[i] for i in frames]).unsqueeze(0),
        )

    def release_before(self, frame: int) -> None:
        for index in [i for i in self.latents if i < frame]:
            del self.latents[index], self.tokens[index]


class PipelineSampler:
    """Binds pipeline, schedule, noise and conditioning for the strategies."""

    def __init__(self, pipeline, schedule, noise, cache, latent_shape, guidance, timer: StageTimer):
        self.pipeline, self.noise, self.cache, self.timer = pipeline, noise, cache, timer
        self.device = pipeline.device
        self.sigmas, self.init_noise_sigma = schedule.sigmas.to(self.device), schedule.init_noise_sigma
        self.latent_shape, self.guidance = latent_shape, guidance

    def noise_latents(self, frames: range) -> torch.Tensor:
        # Noise is drawn on the CPU so that results do not depend on the device's generator.
        return self.noise.initial_latents(frames, self.latent_shape).to(self.device) * self.init_noise_sigma

    def renoise(self, frames: range, step: int) -> torch.Tensor:
        return self.noise.renoise(frames, step, self.latent_shape).to(self.device)

    def sample(
        self,
        x: torch.Tensor,
        frames: range,
        context: torch.Tensor | None = None,
        context_sigma: float | None = None,
        before_step: BeforeStep | None = None,
    ) -> torch.Tensor:
        cond = self.cache.get(frames)
        # ChronoDepth v1's sampler hands ``denoise`` latents it has already scaled by c_in.
        prescale = self.pipeline.config.prescale_state
        sample = sampler_for(prescale)
        num_context = 0 if context is None else context.shape[1]

        def denoise(x: torch.Tensor, step: int, sigma: torch.Tensor) -> torch.Tensor:
            sigmas = sigma.expand(1, x.shape[1])
            if context is not None:
                x = torch.cat([context, x], dim=1)
                context_sigmas = torch.full(
                    (1, num_context), context_sigma, dtype=sigma.dtype, device=sigma.device
                )
                sigmas = torch.cat([context_sigmas, sigmas], dim=1)
            with self.timer("denoise"):
                denoised = self.pipeline.denoise(x, sigmas, cond, self.guidance, input_is_scaled=prescale)
            return denoised[:, num_context:]

        return sample(denoise, x.float(), self.sigmas, before_step)


class AlignedDecoder:
    """Decodes final latents in chunks of ``chunk`` frames counted from frame 0."""

    def __init__(self, pipeline: WindowPipeline, chunk: int, sink: DepthSink, timer: StageTimer):
        self.pipeline, self.chunk, self.sink, self.timer = pipeline, chunk, sink, timer
        self.pending: torch.Tensor | None = None
        self.pending_start = 0

    def push(self, start: int, latents: torch.Tensor) -> None:
        if self.pending is None:
            self.pending, self.pending_start = latents[0], start
        else:
            self.pending = torch.cat([self.pending, latents[0]])
        while self.pending is not None and len(self.pending) >= self.chunk:
            self._emit(self.chunk)

    def flush(self) -> None:
        if self.pending is not None:
            self._emit(len(self.pending))

    def _emit(self, count: int) -> None:
        with self.timer("decode"):
            depth = self.pipeline.decode(self.pending[:count])
        self.sink(self.pending_start, depth)
        rest = self.pending[count:]
        self.pending, self.pending_start = (rest if len(rest) else None), self.pending_start + count

    def state_dict(self) -> dict:
        return {"pending": self.pending, "pending_start": self.pending_start}

    def load_state_dict(self, state: dict) -> None:
        self.pending, self.pending_start = state["pending"], state["pending_start"]
