"""EDM preconditioning, the Euler sampler and noise sources against independent computations."""

from __future__ import annotations

import copy

import pytest
import torch

from videodepth.diffusion.noise import FrameKeyedNoise, ReferenceOrderNoise
from videodepth.diffusion.preconditioning import (
    c_in,
    c_noise,
    c_out,
    c_skip,
    denoised_from_output,
    sigma_from_c_noise,
)
from videodepth.diffusion.samplers import euler_step, sample_euler, sample_euler_prescaled, sampler_for
from videodepth.diffusion.schedules import sampling_schedule, svd_scheduler


def fake_network(x_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed nonlinear function standing in for the UNet output F."""
    return torch.tanh(0.7 * x_in + 0.1 * t) - 0.2 * x_in.roll(1, dims=-1)


def diffusers_loop(x: torch.Tensor, steps: int, prescale: bool) -> torch.Tensor:
    scheduler = svd_scheduler()
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        scaled = scheduler.scale_model_input(x, t)
        if prescale:  # ChronoDepth v1 feeds the scaled latents back into the step
            x = scaled
        x = scheduler.step(fake_network(scaled, t), t, x).prev_sample
    return x


@pytest.mark.parametrize("prescale", [False, True])
@pytest.mark.parametrize("steps", [1, 5, 12])
def test_euler_sampler_matches_diffusers_scheduler(steps, prescale):
    schedule = sampling_schedule(svd_scheduler(), steps)
    x0 = (
        torch.randn(1, 3, 4, 8, 8, generator=torch.Generator().manual_seed(steps)) * schedule.init_noise_sigma
    )

    def denoise(x, step, sigma):
        x_in = x if prescale else c_in(sigma) * x
        return denoised_from_output(fake_network(x_in, c_noise(sigma)), x, sigma)

    ours = sampler_for(prescale)(denoise, x0.clone(), schedule.sigmas)
    reference = diffusers_loop(x0.clone(), steps, prescale)
    assert torch.allclose(ours, reference, atol=1e-5, rtol=1e-5)


def euler_loop_as_it_was(denoise, x, sigmas, before_step=None, prescale_state=False):
    """The single Euler loop with a pre-scaling flag that both samplers replace, re-typed here."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        if before_step is not None:
            x = before_step(x, i)
        if prescale_state:
            x = x * c_in(sigma)
        x = euler_step(x, denoise(x, i, sigma), sigma, sigma_next)
    return x


@pytest.mark.parametrize("prescale", [False, True])
@pytest.mark.parametrize("with_before_step", [False, True])
def test_each_sampler_gives_the_numbers_of_the_flagged_loop(prescale, with_before_step):
    schedule = sampling_schedule(svd_scheduler(), 5)
    x0 = torch.randn(1, 4, 4, 6, 6, generator=torch.Generator().manual_seed(3)) * schedule.init_noise_sigma
    anchor = torch.randn(1, 2, 4, 6, 6, generator=torch.Generator().manual_seed(4))
    seen: list[list[torch.Tensor]] = [[], []]

    def toy_denoiser(calls):
        def denoise(x, step, sigma):
            calls.append(x.clone())
            return torch.tanh(0.3 * x + 0.05 * step) * sigma / (1 + sigma)

        return denoise

    def before_step(x, step):
        x = x.clone()
        x[:, :2] = anchor + 0.1 * step
        return x

    hook = before_step if with_before_step else None
    sample = sampler_for(prescale)
    assert sample is (sample_euler_prescaled if prescale else sample_euler)
    ours = sample(toy_denoiser(seen[0]), x0.clone(), schedule.sigmas, hook)
    theirs = euler_loop_as_it_was(
        toy_denoiser(seen[1]), x0.clone(), schedule.sigmas, hook, prescale_state=prescale
    )
    assert torch.equal(ours, theirs)
    # the denoiser sees the same latents: for the pre-scaled sampler, x * c_in(sigma)
    assert len(seen[0]) == len(seen[1]) == 5 and all(torch.equal(a, b) for a, b in zip(*seen, strict=True))


def test_sampler_for_reads_a_model_config_or_the_flag():
    from videodepth.models.config import DepthModelConfig, chronodepth_config, depthcrafter_config

    assert sampler_for(chronodepth_config()) is sample_euler_prescaled is sampler_for(True)
    assert (
        sampler_for(depthcrafter_config())
        is sample_euler
        is sampler_for(DepthModelConfig())
        is sampler_for(False)
    )


def test_sampler_with_an_oracle_denoiser_lands_on_the_clean_sample():
    target = torch.randn(2, 4, 6)
    schedule = sampling_schedule(svd_scheduler(), 7)
    x = torch.randn(2, 4, 6) * schedule.init_noise_sigma
    result = sample_euler(lambda x, i, s: target, x, schedule.sigmas)
    assert torch.allclose(result, target, atol=1e-5)


def test_preconditioning_identities():
    sigma = torch.tensor([[0.002, 0.5, 1.0, 700.0]])
    # c_skip^2 + (c_out/sigma_data)^2 ... EDM: c_skip + c_out^2 == 1 when sigma_data = 1
    assert torch.allclose(c_skip(sigma) + c_out(sigma) ** 2, torch.ones(1, 4, 1, 1, 1))
    assert torch.allclose(c_in(sigma) ** 2, c_skip(sigma))
    assert c_noise(torch.tensor(float(torch.e) ** 4)).item() == pytest.approx(1.0)
    assert c_noise(torch.tensor(sigma_from_c_noise(-4.0))).item() == pytest.approx(-4.0, abs=1e-6)


def test_schedule_is_svd_karras():
    schedule = sampling_schedule(svd_scheduler(), 5)
    assert schedule.sigmas[0].item() == pytest.approx(700.0)
    assert schedule.sigmas[-2].item() == pytest.approx(0.002)
    assert schedule.sigmas[-1].item() == 0.0
    assert schedule.init_noise_sigma == pytest.approx((700.0**2 + 1) ** 0.5)
    assert torch.all(schedule.sigmas[:-1] > schedule.sigmas[1:])


def test_reference_noise_streams_the_whole_video_draw():
    frame_shape, num_frames, seed = (3, 8, 16), 5, 11
    generator = torch.Generator().manual_seed(seed)
    whole_video = torch.randn((num_frames, *frame_shape), generator=generator)
    then_latents = torch.randn((1, 4, 4, 1, 2), generator=generator)

    noise = ReferenceOrderNoise(seed, num_frames, frame_shape)
    for frame in (3, 0, 4):  # any order: each frame replays its own part of the stream
        assert torch.equal(noise.rgb_augmentation(frame, frame_shape), whole_video[frame])
    assert torch.equal(noise.initial_latents(range(4), (4, 1, 2)), then_latents)


def test_reference_noise_state_round_trip():
    noise = ReferenceOrderNoise(3, 2, (3, 4, 4))
    state = copy.deepcopy(noise.state_dict())
    first = noise.initial_latents(range(2), (4, 2, 2))
    noise.load_state_dict(state)
    assert torch.equal(noise.initial_latents(range(2), (4, 2, 2)), first)


def test_frame_keyed_noise_depends_on_frame_not_on_call_order():
    noise = FrameKeyedNoise(7)
    window = noise.initial_latents(range(2, 6), (4, 3, 3))
    assert torch.equal(noise.initial_latents(range(4, 5), (4, 3, 3))[0, 0], window[0, 2])
    assert not torch.equal(FrameKeyedNoise(8).initial_latents(range(2, 6), (4, 3, 3)), window)
    assert not torch.equal(noise.rgb_augmentation(2, (4, 3, 3)), window[0, 0])  # purposes differ
    assert not torch.equal(noise.renoise(range(2, 3), 0, (4, 3, 3)), noise.renoise(range(2, 3), 1, (4, 3, 3)))
