"""How one job samples: the run settings of the pipeline, typed and checked when made.

Every entry point builds them the same way (``RunSettings.for_model(config, **overrides)``): the
model family's defaults, then whatever the user set. Each strategy option is checked by the
strategy that declares it (:mod:`videodepth.inference.strategies`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from videodepth.diffusion.noise import FrameKeyedNoise, NoiseSource, ReferenceOrderNoise
from videodepth.errors import InputError
from videodepth.inference.strategies import Strategy, check_options, integer_at_least, strategy_from_settings
from videodepth.models.config import DepthModelConfig, SamplingDefaults


@dataclass
class RunSettings(SamplingDefaults):
    seed: int = 42
    # "frame": noise keyed by frame index (streaming- and resume-exact); "reference": the draw
    # order of the reference implementations, for parity checks.
    noise: str = "frame"
    noise_init: bool = True
    blend: str = "linear"

    def __post_init__(self) -> None:
        """Every setting checked here, so that the CLI, the web UI and Python callers get one clear line.
        The strategy options are checked by the strategies' own fields: each option on its own, whichever
        strategy runs, and the chosen strategy's options together."""
        for name, minimum in {"steps": 1, "decode_chunk_size": 1, "seed": 0}.items():
            integer_at_least(minimum)(name, getattr(self, name))
        if not math.isfinite(self.guidance) or self.guidance < 0:
            raise InputError(f"guidance must be a finite number >= 0 (1 = off), got {self.guidance!r}")
        if self.noise not in ("frame", "reference"):
            raise InputError(f"unknown noise source '{self.noise}'; use frame or reference")
        check_options(**vars(self))
        self.make_strategy()

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
        return strategy_from_settings(self.strategy, **vars(self))

    def make_noise(self, num_frames: int, frame_shape: tuple[int, int, int]) -> NoiseSource:
        if self.noise == "frame":
            return FrameKeyedNoise(self.seed)
        if self.noise == "reference":
            return ReferenceOrderNoise(self.seed, num_frames, frame_shape)
        raise InputError(f"unknown noise source '{self.noise}'; use frame or reference")
