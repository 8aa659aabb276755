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

Each strategy is a dataclass of exactly its own options (fields made with :func:`option`, which
check their values), registered by name in :data:`STRATEGIES`; :func:`strategy_from_settings`
builds one from flat settings. A new option is one field here, plus its setting in
``RunSettings`` and its command-line argument.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import torch

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
        self,
        x: torch.Tensor,
        frames: range,
        context: torch.Tensor | None = None,
        context_sigma: float | None = None,
        before_step: BeforeStep | None = None,
    ) -> torch.Tensor: ...


# Options: a strategy's dataclass fields. Each carries a check of its value on its own (one
# InputError line naming the option); how a strategy's options go together it checks itself.
OptionCheck = Callable[[str, Any], None]


def _label(name: str) -> str:
    return name.replace("_", "-")


def integer_at_least(minimum: int) -> OptionCheck:
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise InputError(f"{_label(name)} must be an integer >= {minimum}, got {value!r}")

    return check


def finite_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InputError(f"{_label(name)} must be a finite number, got {value!r}")


def boolean(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{_label(name)} must be true or false, got {value!r}")


def one_of(*choices: str) -> OptionCheck:
    def check(name: str, value: Any) -> None:
        if value not in choices:
            raise InputError(f"unknown {_label(name)} '{value}'; use {' or '.join(choices)}")

    return check


def option(default: Any, check: OptionCheck) -> Any:
    """A strategy option: a dataclass field with its default and the check of its value."""
    return field(default=default, metadata={"check": check})


class Strategy(ABC):
    name: ClassVar[str]

    def __post_init__(self) -> None:
        for option_field in dataclasses.fields(self):
            option_field.metadata["check"](option_field.name, getattr(self, option_field.name))

    @abstractmethod
    def plan(self, num_frames: int) -> list[Window]: ...

    def initial_state(self, sampler: WindowSampler, num_frames: int) -> dict:
        return {}

    @abstractmethod
    def run(self, sampler: WindowSampler, window: Window, state: dict) -> torch.Tensor:
        """Denoise one window; return the latents of ``window.emits`` [1, n, C, h, w] and
        update ``state`` in place for the next window."""


# Every strategy by name, in the order of videodepth.choices.STRATEGIES (which the command line
# offers without importing this module; a test keeps the two equal).
STRATEGIES: dict[str, type[Strategy]] = {}
S = TypeVar("S", bound=type[Strategy])


def register(cls: S) -> S:
    """Class decorator: adds a strategy dataclass to :data:`STRATEGIES` under its ``name``."""
    if cls.name in STRATEGIES:
        raise ValueError(f"strategy '{cls.name}' registered twice")
    STRATEGIES[cls.name] = cls
    return cls


def strategy_from_settings(name: str, /, **settings: Any) -> Strategy:
    """The strategy ``name`` built from flat settings (e.g. a RunSettings' fields): it gets only
    the options it declares, the rest are ignored; options not given keep the class defaults."""
    cls = STRATEGIES.get(name)
    if cls is None:
        raise InputError(f"unknown strategy '{name}'; choose one of {', '.join(STRATEGIES)}")
    declared = {f.name for f in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in settings.items() if key in declared})


def check_options(**settings: Any) -> None:
    """Checks each strategy option among flat ``settings`` on its own, whichever strategy declares
    it (settings that are no strategy's option are ignored), so that a bad value for an option
    the chosen strategy does not use is still refused."""
    checks: dict[str, OptionCheck] = {}
    for cls in STRATEGIES.values():
        for option_field in dataclasses.fields(cls):
            checks.setdefault(option_field.name, option_field.metadata["check"])
    for key, value in settings.items():
        if key in checks:
            checks[key](key, value)


@register
@dataclass
class DepthCrafterWindows(Strategy):
    name: ClassVar[str] = "depthcrafter"
    window: int = option(110, integer_at_least(1))
    overlap: int = option(25, integer_at_least(0))
    noise_init: bool = option(True, boolean)
    blend: str = option("linear", one_of("linear", "average"))

    def __post_init__(self):
        super().__post_init__()
        if not self.overlap < self.window:
            raise InputError(
                f"--overlap must be in [0, window) but is {self.overlap} with window {self.window}"
            )

    def _sizes(self, num_frames: int) -> tuple[int, int]:
        return (num_frames, 0) if num_frames <= self.window else (self.window, self.overlap)

    def plan(self, num_frames: int) -> list[Window]:
        window, overlap = self._sizes(num_frames)
        windows, start = [], 0
        while start < num_frames - overlap:
            end = min(start + window, num_frames)
            windows.append(
                Window(range(start, end), range(start, num_frames if end == num_frames else end - overlap))
            )
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

    window: int = option(10, integer_at_least(1))
    context: int = option(5, integer_at_least(0))

    def __post_init__(self):
        super().__post_init__()
        if not self.context < self.window:
            raise InputError(
                f"--context must be in [0, window) but is {self.context} with window {self.window}"
            )

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


@register
@dataclass
class ChronoDepthWindows(SlidingWindows):
    name: ClassVar[str] = "chronodepth"
    sigma_epsilon: float = option(-4.0, finite_number)  # the context's noise label, as the network's c_noise

    def continue_window(self, sampler, window, context):
        return sampler.sample(
            sampler.noise_latents(window.emits),
            window.frames,
            context=context,
            context_sigma=sigma_from_c_noise(self.sigma_epsilon),
        )


@register
@dataclass
class ReplacementWindows(SlidingWindows):
    name: ClassVar[str] = "replacement"

    def continue_window(self, sampler, window, context):
        context_frames = range(window.frames.start, window.emits.start)

        def renoise_context(x: torch.Tensor, step: int) -> torch.Tensor:
            x = x.clone()
            x[:, : len(context_frames)] = (
                context + sampler.renoise(context_frames, step) * sampler.sigmas[step]
            )
            return x

        x = torch.cat([torch.zeros_like(context), sampler.noise_latents(window.emits)], dim=1)
        return sampler.sample(x, window.frames, before_step=renoise_context)[:, len(context_frames) :]


@register
@dataclass
class NaiveWindows(SlidingWindows):
    name: ClassVar[str] = "naive"

    def continue_window(self, sampler, window, context):
        x = sampler.sample(sampler.noise_latents(window.frames), window.frames)
        return x[:, -len(window.emits) :]


@register
@dataclass
class SingleWindow(Strategy):
    name: ClassVar[str] = "single"

    def plan(self, num_frames: int) -> list[Window]:
        return [Window(range(num_frames), range(num_frames))]

    def run(self, sampler: WindowSampler, window: Window, state: dict) -> torch.Tensor:
        return sampler.sample(sampler.noise_latents(window.frames), window.frames)
