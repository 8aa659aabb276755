"""EDM preconditioning of SVD's v-prediction network (Karras et al. 2022, table 1).

The denoiser is ``D(x; sigma) = c_skip x + c_out F(c_in x; c_noise)``. ``sigma`` may be a
scalar or hold one value per frame (shape ``[B, F]``); coefficients are returned broadcastable
against latents of shape ``[B, F, C, H, W]``.
"""

from __future__ import annotations

import torch


def _per_frame(sigma: torch.Tensor) -> torch.Tensor:
    return sigma.reshape(*sigma.shape, 1, 1, 1) if sigma.dim() == 2 else sigma


def c_in(sigma: torch.Tensor) -> torch.Tensor:
    return 1.0 / (_per_frame(sigma) ** 2 + 1.0) ** 0.5


def c_skip(sigma: torch.Tensor) -> torch.Tensor:
    return 1.0 / (_per_frame(sigma) ** 2 + 1.0)


def c_out(sigma: torch.Tensor) -> torch.Tensor:
    s = _per_frame(sigma)
    return -s / (s**2 + 1.0) ** 0.5


def c_noise(sigma: torch.Tensor) -> torch.Tensor:
    """The network's time input; SVD was trained with ``0.25 ln(sigma)``."""
    return 0.25 * torch.log(sigma.double()).to(sigma.dtype)


def sigma_from_c_noise(value: float) -> float:
    """Inverse of :func:`c_noise`, e.g. ChronoDepth's context label -4 gives sigma = e^-16."""
    return float(torch.exp(torch.tensor(4.0 * value, dtype=torch.float64)))


def denoised_from_output(output: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The clean estimate ``D(x; sigma)`` from the raw network output ``F``."""
    return c_skip(sigma) * x + c_out(sigma) * output


def loss_weight(sigma: torch.Tensor) -> torch.Tensor:
    """EDM's lambda(sigma) = (sigma^2 + 1) / sigma^2 (with sigma_data = 1), which makes the
    effective target of ``F`` unit-variance at every noise level."""
    return (sigma**2 + 1.0) / sigma**2
