"""Runs a strategy over a stream of frames with memory bounded by the window.

Frames are pulled from an iterator only when a window needs them and are dropped (as
conditioning latents) once no later window will; final depth latents are decoded in chunks
aligned to the video's start (the temporal VAE decoder mixes frames within a chunk, so the
alignment must not depend on windowing) and handed to a sink as soon as they are decoded.
After every window the whole carry-over state is small enough to checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from videodepth.diffusion.noise import FrameKeyedNoise, NoiseSource, ReferenceOrderNoise
from videodepth.diffusion.samplers import BeforeStep, sample_euler
from videodepth.diffusion.schedules import sampling_schedule
from videodepth.errors import InputError
from videodepth.inference.pipeline import Conditioning, VideoDepthPipeline
from videodepth.inference.strategies import STRATEGIES, Strategy, Window, make_strategy
from videodepth.models.config import DepthModelConfig, SamplingDefaults

DepthSink = Callable[[int, np.ndarray], None]  # (first frame index, depth [n, H, W] in [0, 1])


@dataclass
class RunSettings(SamplingDefaults):
    seed: int = 42
    # "frame": noise keyed by frame index (streaming- and resume-exact); "reference": the draw
    # order of the reference implementations, for parity checks.
    noise: str = "frame"
    noise_init: bool = True
    blend: str = "linear"

    def __post_init__(self) -> None:
        """Every setting checked here, so that the CLI, the web UI and Python callers get one clear line."""
        at_least = {"steps": 1, "window": 1, "overlap": 0, "context": 0, "decode_chunk_size": 1, "seed": 0}
        for name, minimum in at_least.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise InputError(f"{name.replace('_', '-')} must be an integer >= {minimum}, got {value!r}")
        if not math.isfinite(self.guidance) or self.guidance < 0:
            raise InputError(f"guidance must be a finite number >= 0 (1 = off), got {self.guidance!r}")
        if not math.isfinite(self.sigma_epsilon):
            raise InputError(f"sigma-epsilon must be a finite number, got {self.sigma_epsilon!r}")
        if self.strategy not in STRATEGIES:
            raise InputError(f"unknown strategy '{self.strategy}'; choose from {', '.join(STRATEGIES)}")
        if self.noise not in ("frame", "reference"):
            raise InputError(f"unknown noise source '{self.noise}'; use frame or reference")
        if self.blend not in ("linear", "average"):
            raise InputError(f"unknown blend '{self.blend}'; use linear or average")

    @classmethod
    def for_model(cls, config: DepthModelConfig, **overrides) -> RunSettings:
        """The model family's defaults, with every override that is not None applied."""
        defaults = {f.name: getattr(config, f.name) for f in dataclasses.fields(SamplingDefaults)}
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        defaults.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**defaults)

    def make_strategy(self) -> Strategy:
        return make_strategy(
            self.strategy, self.window, self.overlap, self.context, self.sigma_epsilon, self.noise_init, self.blend
        )

    def make_noise(self, num_frames: int, frame_shape: tuple[int, int, int]) -> NoiseSource:
        if self.noise == "frame":
            return FrameKeyedNoise(self.seed)
        if self.noise == "reference":
            return ReferenceOrderNoise(self.seed, num_frames, frame_shape)
        raise InputError(f"unknown noise source '{self.noise}'; use frame or reference")


class ConditionCache:
    """Encodes frames on first use and forgets them when released.

    Frames are encoded in batches aligned to multiples of ``chunk`` counted from frame 0, so
    that every frame is always encoded in the same company (batch composition can change CPU
    kernels' rounding) and a resumed run reproduces an uninterrupted one bit for bit.
    """

    def __init__(
        self, pipeline: VideoDepthPipeline, open_frames: Callable[[int], Iterator[np.ndarray]], first_frame: int,
        num_frames: int, noise: NoiseSource, chunk: int,
    ):
        self.pipeline, self.noise, self.chunk, self.num_frames = pipeline, noise, chunk, num_frames
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
                    raise InputError(f"the video ended at frame {self.next_frame + len(batch)}, earlier than announced")
                batch.append(frame)
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

    def __init__(self, pipeline, schedule, noise, cache, latent_shape, guidance):
        self.pipeline, self.noise, self.cache = pipeline, noise, cache
        self.device = pipeline.device
        self.sigmas, self.init_noise_sigma = schedule.sigmas.to(self.device), schedule.init_noise_sigma
        self.latent_shape, self.guidance = latent_shape, guidance

    def noise_latents(self, frames: range) -> torch.Tensor:
        # Noise is drawn on the CPU so that results do not depend on the device's generator.
        return self.noise.initial_latents(frames, self.latent_shape).to(self.device) * self.init_noise_sigma

    def renoise(self, frames: range, step: int) -> torch.Tensor:
        return self.noise.renoise(frames, step, self.latent_shape).to(self.device)

    def sample(
        self, x: torch.Tensor, frames: range, context: torch.Tensor | None = None,
        context_sigma: float | None = None, before_step: BeforeStep | None = None,
    ) -> torch.Tensor:
        cond = self.cache.get(frames)
        prescale = self.pipeline.config.prescale_state
        num_context = 0 if context is None else context.shape[1]

        def denoise(x: torch.Tensor, step: int, sigma: torch.Tensor) -> torch.Tensor:
            sigmas = sigma.expand(1, x.shape[1])
            if context is not None:
                x = torch.cat([context, x], dim=1)
                context_sigmas = torch.full((1, num_context), context_sigma, dtype=sigma.dtype, device=sigma.device)
                sigmas = torch.cat([context_sigmas, sigmas], dim=1)
            denoised = self.pipeline.denoise(x, sigmas, cond, self.guidance, input_is_scaled=prescale)
            return denoised[:, num_context:]

        return sample_euler(denoise, x.float(), self.sigmas, before_step, prescale_state=prescale)


class AlignedDecoder:
    """Decodes final latents in chunks of ``chunk`` frames counted from frame 0."""

    def __init__(self, pipeline: VideoDepthPipeline, chunk: int, sink: DepthSink):
        self.pipeline, self.chunk, self.sink = pipeline, chunk, sink
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
        self.sink(self.pending_start, self.pipeline.decode(self.pending[:count]))
        rest = self.pending[count:]
        self.pending, self.pending_start = (rest if len(rest) else None), self.pending_start + count

    def state_dict(self) -> dict:
        return {"pending": self.pending, "pending_start": self.pending_start}

    def load_state_dict(self, state: dict) -> None:
        self.pending, self.pending_start = state["pending"], state["pending_start"]


def run_windows(
    pipeline: VideoDepthPipeline,
    open_frames: Callable[[int], Iterator[np.ndarray]],
    num_frames: int,
    frame_size: tuple[int, int],
    settings: RunSettings,
    sink: DepthSink,
    resume_state: dict | None = None,
    checkpoint: Callable[[dict], None] | None = None,
    progress: bool = True,
) -> None:
    """Predict depth for ``num_frames`` frames of size ``frame_size`` (multiples of the
    pipeline's ``size_multiple``). ``open_frames(start)`` yields uint8 RGB frames from
    ``start`` on. After each window ``checkpoint`` receives a state from which
    ``resume_state`` continues exactly."""
    height, width = frame_size
    multiple = pipeline.size_multiple
    if height % multiple or width % multiple or height < multiple or width < multiple:
        raise InputError(f"frame size {width}x{height} must be positive multiples of {multiple} for this model")
    if num_frames < 1:
        raise InputError("the video has no frames")
    strategy = settings.make_strategy()
    windows = strategy.plan(num_frames)
    noise = settings.make_noise(num_frames, (3, height, width))
    schedule = sampling_schedule(pipeline.model.scheduler, settings.steps)
    latent_shape = pipeline.latent_shape(height, width)

    first_window = 0 if resume_state is None else resume_state["next_window"]
    cache = ConditionCache(
        pipeline, open_frames, windows[min(first_window, len(windows) - 1)].frames.start, num_frames, noise,
        settings.decode_chunk_size,
    )
    sampler = PipelineSampler(pipeline, schedule, noise, cache, latent_shape, settings.guidance)
    decoder = AlignedDecoder(pipeline, settings.decode_chunk_size, sink)
    if resume_state is None:
        state = strategy.initial_state(sampler, num_frames)
    else:
        state = resume_state["strategy"]
        noise.load_state_dict(resume_state["noise"])
        decoder.load_state_dict(resume_state["decoder"])

    done = windows[first_window].emits.start if first_window < len(windows) else num_frames
    with tqdm(total=num_frames, initial=done, unit="frame", desc=strategy.name, disable=not progress) as bar:
        for index in range(first_window, len(windows)):
            window: Window = windows[index]
            latents = strategy.run(sampler, window, state)
            decoder.push(window.emits.start, latents)
            if index + 1 < len(windows):
                cache.release_before(windows[index + 1].frames.start)
            bar.update(len(window.emits))
            if checkpoint is not None and index + 1 < len(windows):
                checkpoint({"next_window": index + 1, "strategy": state, "noise": noise.state_dict(),
                            "decoder": decoder.state_dict()})
    decoder.flush()


def predict_in_memory(pipeline: VideoDepthPipeline, frames: np.ndarray, settings: RunSettings) -> np.ndarray:
    """Depth for frames held in memory, min-max normalised over the whole clip."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError(f"expected uint8 frames of shape [T, H, W, 3], got {frames.dtype} {frames.shape}")
    depth = np.zeros(frames.shape[:3], np.float32)

    def keep(start: int, chunk: np.ndarray) -> None:
        depth[start : start + len(chunk)] = chunk

    run_windows(pipeline, lambda start: iter(frames[start:]), len(frames), frames.shape[1:3], settings, keep,
                progress=False)
    return normalize_min_max(depth)


def normalize_min_max(depth: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """One affine normalisation for the whole video (no per-frame flicker)."""
    lo = float(depth.min()) if lo is None else lo
    hi = float(depth.max()) if hi is None else hi
    return ((depth - lo) / max(hi - lo, 1e-12)).astype(np.float32)
