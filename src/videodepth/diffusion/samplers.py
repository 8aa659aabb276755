"""The Euler sampler of EDM / k-diffusion, written as a short function of sigmas."""

from __future__ import annotations

from collections.abc import Callable

import torch

from videodepth.diffusion.preconditioning import c_in

# (x, step_index, sigma) -> D(x; sigma); ``sigma`` is a 0-d tensor.
Denoise = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]
# (x, step_index) -> x, run before each step (used for anchoring and re-noising context).
BeforeStep = Callable[[torch.Tensor, int], torch.Tensor]


def euler_step(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor):
    derivative = (x - denoised) / sigma
    return x + derivative * (sigma_next - sigma)


def sample_euler(
    denoise: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    before_step: BeforeStep | None = None,
    prescale_state: bool = False,
) -> torch.Tensor:
    """Integrate the probability-flow ODE from ``sigmas[0]`` to ``sigmas[-1]`` (= 0).

    ``prescale_state`` reproduces ChronoDepth v1's published sampler, which scales the latents
    by ``c_in`` in place before every step and then takes the Euler step from the scaled
    latents; its checkpoint was tuned with that behaviour, so we keep it for that family only.
    ``denoise`` is then called with the already-scaled latents.
    """
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        if before_step is not None:
            x = before_step(x, i)
        if prescale_state:
            x = x * c_in(sigma)
        x = euler_step(x, denoise(x, i, sigma), sigma, sigma_next)
    return x
