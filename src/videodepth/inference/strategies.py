"""Long-video strategies: how a video longer than the model's window is cut into windows and
how windows are tied together so that scale, shift and detail stay consistent over time.

- ``depthcrafter``: overlapping windows; each new window starts its overlap from the previous
  window's result re-noised to the first sigma (anchoring), and the overlap is blended with a
  linear ramp ("mortise and tenon"). ``noise_init=False`` / ``blend="average"`` give the
  paper's ablations.
- ``chronodepth``: sliding window whose first frames are already-predicted clean latents,
  labelled with a tiny noise level, so they steer the new frames without being changed.
- ``replacement``: like chronodepth, but the context is re-noised to the current sigma at every
  step (the "replacement trick" baseline).
- ``naive``: independent windows; only the new frames of each are kept.
- ``single``: the whole clip in one window.

A strategy plans its windows up front and carries a small state (a few latent frames) from one
window to the next, so a run can stop after any window and resume exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch

from videodepth.choices import STRATEGIES
from videodepth.diffusion.preconditioning import sigma_from_c_noise
from videodepth.diffusion.samplers import BeforeStep
from videodepth.errors import InputError


@dataclass(frozen=True)
class Window:
    frames: range  # frames the model sees
    emits: range  # frames whose latents are final once this window is done


class WindowSampler(Protocol):
    sigmas: torch.Tensor
    init_noise_sigma: float

    def noise_latents(self, frames: range) -> torch.Tensor: ...
    def renoise(self, frames: range, step: int) -> torch.Tensor: ...
    def sample(
        self, x: torch.Tensor, frames: range, context: torch.Tensor | None = None,
        context_sigma: float | None = None, before_step: BeforeStep | None = None,
    ) -> torch.Tensor: ...


class Strategy(ABC):
    name: ClassVar[str]

    @abstractmethod
    def plan(self, num_frames: int) -> list[Window]: ...

    def initial_state(self, sampler: WindowSampler, num_frames: int) -> dict:
        return {}

    @abstractmethod
    def run(self, sampler: WindowSampler, window: Window, state: dict) -> torch.Tensor:
        """Denoise one window; return the latents of ``window.emits`` [1, n, C, h, w] and
        update ``state`` in place for the next window."""


class SingleWindow(Strategy):
    name = "single"

    def plan(self, num_frames: int) -> list[Window]:
        return [Window(range(num_frames), range(num_frames))]

    def run(self, sampler: WindowSampler, window: Window, state: dict) -> torch.Tensor:
        return sampler.sample(sampler.noise_latents(window.frames), window.frames)


@dataclass
class DepthCrafterWindows(Strategy):
    window: int = 110
    overlap: int = 25
    noise_init: bool = True
    blend: str = "linear"  # or "average"
    name: ClassVar[str] = "depthcrafter"

    def __post_init__(self):
        if not 0 <= self.overlap < self.window:
            raise InputError(f"--overlap must be in [0, window) but is {self.overlap} with window {self.window}")
        if self.blend not in ("linear", "average"):
            raise InputError(f"unknown blend '{self.blend}'; use linear or average")

    def _sizes(self, num_frames: int) -> tuple[int, int]:
        return (num_frames, 0) if num_frames <= self.window else (self.window, self.overlap)

    def plan(self, num_frames: int) -> list[Window]:
        window, overlap = self._sizes(num_frames)
        windows, start = [], 0
        while start < num_frames - overlap:
            end = min(start + window, num_frames)
            windows.append(Window(range(start, end), range(start, num_frames if end == num_frames else end - overlap)))
            start += window - overlap
        return windows

    def initial_state(self, sampler: WindowSampler, num_frames: int) -> dict:
        window, overlap = self._sizes(num_frames)
        # One noise draw serves every window, rotated so that each window's overlap frames meet
        # the noise the previous window gave them.
        return {"noise": sampler.noise_latents(range(window)), "tail": None, "overlap": overlap}

    def run(self, sampler: WindowSampler, window: Window, state: dict) -> torch.Tensor:
        overlap, tail, noise = state["overlap"], state["tail"], state["noise"]
        stride = noise.shape[1] - overlap
        x = noise[:, : len(window.frames)].clone()
        if overlap:
            state["noise"] = torch.cat([noise[:, -overlap:], noise[:, :stride]], dim=1)
        if tail is not None and self.noise_init:
            x[:, :overlap] = tail + x[:, :overlap] / sampler.init_noise_sigma * sampler.sigmas[0]
        x = sampler.sample(x, window.frames)
        if tail is not None:
            ramp = torch.linspace(0, 1, overlap) if self.blend == "linear" else torch.full((overlap,), 0.5)
            ramp = ramp.view(1, overlap, 1, 1, 1).to(x)
            x[:, :overlap] = x[:, :overlap] * ramp + tail * (1 - ramp)
        state["tail"] = x[:, -overlap:].clone() if overlap else None
        return x[:, : len(window.emits)]


@dataclass
class SlidingWindows(Strategy):
    """Shared plan of ChronoDepth's sliding window and its two baselines: a first window of
    ``window`` frames, then steps of ``window - context`` new frames each."""

    window: int = 10
    context: int = 5

    def __post_init__(self):
        if not 0 <= self.context < self.window:
            raise InputError(f"--context must be in [0, window) but is {self.context} with window {self.window}")

    def plan(self, num_frames: int) -> list[Window]:
        first = min(num_frames, self.window)
        windows, current = [Window(range(first), range(first))], first
        while current < num_frames:
            step = min(num_frames - current, self.window - self.context)
            start = max(0, current + step - self.window)
            windows.append(Window(range(start, current + step), range(current, current + step)))
            current += step
        return windows

    def run(self, sampler: WindowSampler, window: Window, state: dict) -> torch.Tensor:
        if window.frames.start == window.emits.start:
            latents = sampler.sample(sampler.noise_latents(window.frames), window.frames)
        else:
            context = state["recent"][:, window.frames.start - state["recent_start"] :]
            latents = self.continue_window(sampler, window, context)
        recent = latents if "recent" not in state else torch.cat([state["recent"], latents], dim=1)
        state["recent"] = recent[:, -self.window :]
        state["recent_start"] = window.emits.stop - state["recent"].shape[1]
        return latents

    @abstractmethod
    def continue_window(self, sampler: WindowSampler, window: Window, context: torch.Tensor) -> torch.Tensor:
        """Latents of ``window.emits`` given the clean latents of the frames before them."""


@dataclass
class ChronoDepthWindows(SlidingWindows):
    sigma_epsilon: float = -4.0  # the context's noise label, as the network's c_noise
    name: ClassVar[str] = "chronodepth"

    def continue_window(self, sampler, window, context):
        return sampler.sample(
            sampler.noise_latents(window.emits), window.frames, context=context,
            context_sigma=sigma_from_c_noise(self.sigma_epsilon),
        )


@dataclass
class ReplacementWindows(SlidingWindows):
    name: ClassVar[str] = "replacement"

    def continue_window(self, sampler, window, context):
        context_frames = range(window.frames.start, window.emits.start)

        def renoise_context(x: torch.Tensor, step: int) -> torch.Tensor:
            x = x.clone()
            x[:, : len(context_frames)] = context + sampler.renoise(context_frames, step) * sampler.sigmas[step]
            return x

        x = torch.cat([torch.zeros_like(context), sampler.noise_latents(window.emits)], dim=1)
        return sampler.sample(x, window.frames, before_step=renoise_context)[:, len(context_frames) :]


@dataclass
class NaiveWindows(SlidingWindows):
    name: ClassVar[str] = "naive"

    def continue_window(self, sampler, window, context):
        x = sampler.sample(sampler.noise_latents(window.frames), window.frames)
        return x[:, -len(window.emits) :]




def make_strategy(
    name: str, window: int, overlap: int, context: int, sigma_epsilon: float = -4.0,
    noise_init: bool = True, blend: str = "linear",
) -> Strategy:
    if window < 1:
        raise InputError(f"--window must be at least 1 but is {window}")
    if name == "depthcrafter":
        return DepthCrafterWindows(window, overlap, noise_init, blend)
    if name == "chronodepth":
        return ChronoDepthWindows(window, context, sigma_epsilon)
    if name == "replacement":
        return ReplacementWindows(window, context)
    if name == "naive":
        return NaiveWindows(window, context)
    if name == "single":
        return SingleWindow()
    raise InputError(f"unknown strategy '{name}'; choose one of {', '.join(STRATEGIES)}")
