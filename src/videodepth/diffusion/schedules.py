"""Noise-level schedules. The sampling schedule is diffusers' EulerDiscreteScheduler configured
as in Stable Video Diffusion img2vid-xt (Karras sigmas from 700 down to 0.002, then 0)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import EulerDiscreteScheduler

# scheduler/scheduler_config.json of stabilityai/stable-video-diffusion-img2vid-xt
SVD_SCHEDULER_CONFIG: dict = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "use_karras_sigmas": True,
}


def svd_scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler.from_config(SVD_SCHEDULER_CONFIG)


@dataclass(frozen=True)
class SamplingSchedule:
    """What a sampler needs: the descending noise levels (ending in 0) and the scale of the
    initial noise (diffusers' ``init_noise_sigma``, sqrt(sigma_max^2 + 1) for SVD)."""

    sigmas: torch.Tensor
    init_noise_sigma: float

    @property
    def num_steps(self) -> int:
        return len(self.sigmas) - 1


def sampling_schedule(scheduler: EulerDiscreteScheduler, num_steps: int) -> SamplingSchedule:
    if num_steps < 1:
        raise ValueError("the number of denoising steps must be at least 1")
    scheduler.set_timesteps(num_steps, device="cpu")
    return SamplingSchedule(
        sigmas=scheduler.sigmas.to(torch.float32).clone(),
        init_noise_sigma=float(scheduler.init_noise_sigma),
    )


def sample_training_sigmas(
    shape: tuple[int, ...], p_mean: float, p_std: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """EDM's training distribution ln(sigma) ~ N(p_mean, p_std^2)."""
    return torch.exp(p_mean + p_std * torch.randn(shape, generator=generator))
