"""Where random numbers come from.

Strategies and encoders never call ``torch.randn`` themselves; they ask a noise source for the
noise of named frames. :class:`FrameKeyedNoise` (the default) derives every draw from
(seed, purpose, frame), so results do not depend on windowing, streaming or resuming.
:class:`ReferenceOrderNoise` replays the draw order of the reference implementations so that a
run can be compared with them number for number.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import torch

Shape = tuple[int, ...]


class NoiseSource(Protocol):
    def rgb_augmentation(self, frame: int, shape: Shape) -> torch.Tensor: ...
    def posterior(self, frame: int, shape: Shape) -> torch.Tensor: ...
    def initial_latents(self, frames: range, shape: Shape) -> torch.Tensor: ...
    def renoise(self, frames: range, step: int, shape: Shape) -> torch.Tensor: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


def _stack_frames(draw, frames: range, shape: Shape) -> torch.Tensor:
    return torch.stack([draw(frame, shape) for frame in frames]).unsqueeze(0)


class FrameKeyedNoise:
    """Stateless: each frame's noise for each purpose has its own seeded generator."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def _draw(self, purpose: str, frame: int, shape: Shape, step: int = 0) -> torch.Tensor:
        key = f"{self.seed}/{purpose}/{frame}/{step}".encode()
        generator = torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
        return torch.randn(shape, generator=generator)

    def rgb_augmentation(self, frame: int, shape: Shape) -> torch.Tensor:
        return self._draw("rgb", frame, shape)

    def posterior(self, frame: int, shape: Shape) -> torch.Tensor:
        return self._draw("posterior", frame, shape)

    def initial_latents(self, frames: range, shape: Shape) -> torch.Tensor:
        return _stack_frames(lambda f, s: self._draw("latent", f, s), frames, shape)

    def renoise(self, frames: range, step: int, shape: Shape) -> torch.Tensor:
        return _stack_frames(lambda f, s: self._draw("renoise", f, s, step), frames, shape)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class ReferenceOrderNoise:
    """The draw order of DepthCrafter v1.0.1 and ChronoDepth v1, from one seed.

    Both references first draw the RGB augmentation noise of the whole video from the main
    generator, then the initial latents (and ChronoDepth's re-noising) in the order the
    strategy asks. ChronoDepth additionally samples VAE posteriors from torch's global
    generator, which its script seeds with the same seed. To stream without holding the whole
    video's augmentation noise, the generator state at every frame boundary is recorded once
    (CPU normal draws of a multiple of 16 values concatenate exactly).
    """

    def __init__(self, seed: int, num_frames: int, frame_shape: Shape):
        self.main = torch.Generator().manual_seed(seed)
        self.posterior_generator = torch.Generator().manual_seed(seed)
        self._frame_states = []
        for _ in range(num_frames):
            self._frame_states.append(self.main.get_state())
            torch.randn(frame_shape, generator=self.main)

    def rgb_augmentation(self, frame: int, shape: Shape) -> torch.Tensor:
        generator = torch.Generator()
        generator.set_state(self._frame_states[frame])
        return torch.randn(shape, generator=generator)

    def posterior(self, frame: int, shape: Shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.posterior_generator)

    def initial_latents(self, frames: range, shape: Shape) -> torch.Tensor:
        return torch.randn((1, len(frames), *shape), generator=self.main)

    def renoise(self, frames: range, step: int, shape: Shape) -> torch.Tensor:
        return torch.randn((1, len(frames), *shape), generator=self.main)

    def state_dict(self) -> dict:
        return {"main": self.main.get_state(), "posterior": self.posterior_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.main.set_state(state["main"])
        self.posterior_generator.set_state(state["posterior"])


class GeneratorNoise:
    """Every draw in call order from one generator, whatever the frame: training's noise, keyed
    by the step through the generator it is given (see videodepth.data.dataset)."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def rgb_augmentation(self, frame: int, shape: Shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator)

    def posterior(self, frame: int, shape: Shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator)

    def initial_latents(self, frames: range, shape: Shape) -> torch.Tensor:
        return torch.randn((1, len(frames), *shape), generator=self.generator)

    def renoise(self, frames: range, step: int, shape: Shape) -> torch.Tensor:
        return torch.randn((1, len(frames), *shape), generator=self.generator)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
