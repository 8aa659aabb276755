"""The Euler samplers of EDM / k-diffusion, written as short functions of sigmas.

A sampler is ``sample(denoise, x, sigmas, before_step=None) -> x``; the model family picks
which one it was tuned with (:func:`sampler_for`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from videodepth.diffusion.preconditioning import c_in

# (x, step_index, sigma) -> D(x; sigma); ``sigma`` is a 0-d tensor.
Denoise = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]
# (x, step_index) -> x, run before each step (used for anchoring and re-noising context).
BeforeStep = Callable[[torch.Tensor, int], torch.Tensor]
# (denoise, x, sigmas, before_step) -> x at sigmas[-1].
Sampler = Callable[[Denoise, torch.Tensor, torch.Tensor, BeforeStep | None], torch.Tensor]


def euler_step(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor):
    derivative = (x - denoised) / sigma
    return x + derivative * (sigma_next - sigma)


def sample_euler(
    denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, before_step: BeforeStep | None = None
) -> torch.Tensor:
    """Integrate the probability-flow ODE from ``sigmas[0]`` to ``sigmas[-1]`` (= 0)."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        if before_step is not None:
            x = before_step(x, i)
        x = euler_step(x, denoise(x, i, sigma), sigma, sigma_next)
    return x


def sample_euler_prescaled(
    denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, before_step: BeforeStep | None = None
) -> torch.Tensor:
    """ChronoDepth v1's published sampler: the latents are scaled by ``c_in`` in place before
    every step and the Euler step is taken from the scaled latents. Its checkpoint was tuned with
    that behaviour, so that family keeps it. ``denoise`` is called with the already-scaled latents."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        if before_step is not None:
            x = before_step(x, i)
        x = x * c_in(sigma)
        x = euler_step(x, denoise(x, i, sigma), sigma, sigma_next)
    return x


def sampler_for(config_or_prescale) -> Sampler:
    """The sampler of a model family: ``config_or_prescale`` is a model config (its
    ``prescale_state``) or that flag itself."""
    prescale = getattr(config_or_prescale, "prescale_state", config_or_prescale)
    return sample_euler_prescaled if prescale else sample_euler
