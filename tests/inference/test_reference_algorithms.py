"""Our pipeline against independent, whole-video computations of the two reference algorithms
(DepthCrafter v1.0.1 and ChronoDepth v1 as METHOD.md describes them), written here with
diffusers' own Euler scheduler, on tiny random models loaded from the published layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
    _resize_with_antialiasing,
)

from tests.conftest import moving_frames
from videodepth.inference.pipeline import VideoDepthPipeline
from videodepth.models.bundle import DepthModel

TOLERANCE = 1e-4


def min_max(x: torch.Tensor) -> np.ndarray:
    x = x.numpy()
    return (x - x.min()) / (x.max() - x.min())


def decode_all(
    model: DepthModel, latents: torch.Tensor, channel_clamp_first: bool, chunk: int = 8
) -> torch.Tensor:
    vae, z = model.vae, latents[0] / model.vae.config.scaling_factor
    frames = torch.cat(
        [
            vae.decode(z[i : i + chunk], num_frames=len(z[i : i + chunk])).sample
            for i in range(0, len(z), chunk)
        ]
    )
    if channel_clamp_first:
        return (frames / 2 + 0.5).clamp(0, 1).mean(1)
    return (frames.mean(1).clamp(-1, 1) + 1) / 2


def clip_tokens(model: DepthModel, images01: torch.Tensor) -> torch.Tensor:
    pixels = model.feature_extractor(
        images=images01,
        do_normalize=True,
        do_center_crop=False,
        do_resize=False,
        do_rescale=False,
        return_tensors="pt",
    ).pixel_values
    return model.image_encoder(pixels).image_embeds


@torch.no_grad()
def depthcrafter_whole_video(model, frames, steps, window, overlap, seed, guidance=1.0):
    torch.manual_seed(seed)
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 * 2 - 1
    tokens = clip_tokens(model, (_resize_with_antialiasing(video, (224, 224)) + 1) / 2)[None]
    video = video + 0.02 * torch.randn(video.shape)
    rgb = model.vae.encode(video).latent_dist.mode()[None]
    ids = torch.tensor([[7.0, 127.0, 0.02]])
    scheduler = model.scheduler
    scheduler.set_timesteps(steps)
    count = len(frames)
    if count <= window:
        window, overlap = count, 0
    init = torch.randn(1, window, *rgb.shape[2:]) * scheduler.init_noise_sigma
    result, start = None, 0
    while start < count - overlap:
        end = min(start + window, count)
        scheduler.set_timesteps(steps)
        x = init[:, : end - start].clone()
        if overlap:
            init = torch.cat([init[:, -overlap:], init[:, : window - overlap]], dim=1)
        for i, t in enumerate(scheduler.timesteps):
            if result is not None and i == 0:
                x[:, :overlap] = (
                    result[:, -overlap:] + x[:, :overlap] / scheduler.init_noise_sigma * scheduler.sigmas[0]
                )
            scaled = scheduler.scale_model_input(x, t)
            out = model.unet(torch.cat([scaled, rgb[:, start:end]], 2), t, tokens[:, start:end], ids).sample
            if guidance != 1.0:
                blank = model.unet(
                    torch.cat([scaled, torch.zeros_like(scaled)], 2),
                    t,
                    torch.zeros_like(tokens[:, start:end]),
                    ids,
                ).sample
                out = blank + guidance * (out - blank)
            x = scheduler.step(out, t, x).prev_sample
        if result is None:
            result = x.clone()
        else:
            ramp = torch.linspace(0, 1, overlap).view(1, overlap, 1, 1, 1)
            result[:, -overlap:] = x[:, :overlap] * ramp + result[:, -overlap:] * (1 - ramp)
            result = torch.cat([result, x[:, overlap:]], dim=1)
        start += window - overlap
    return min_max(decode_all(model, result, channel_clamp_first=True))


@torch.no_grad()
def chronodepth_whole_video(model, frames, steps, n_tokens, chunk_size, seed, mode, sigma_epsilon=-4.0):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 * 2 - 1
    count = len(frames)
    token = clip_tokens(model, torch.zeros(1, 3, 224, 224))
    tokens = token.expand(count, -1)[:, None]  # [T, 1, D]
    torch.randn(video.shape, generator=generator)  # the (zero-strength) augmentation draw
    rgb = torch.cat([model.vae.encode(video[i : i + 8]).latent_dist.sample() for i in range(0, count, 8)])
    rgb = rgb[None] * model.vae.config.scaling_factor
    ids = torch.tensor([[6.0, 127.0, 0.0]])
    scheduler = model.scheduler
    scheduler.set_timesteps(steps)
    timesteps, init_sigma = scheduler.timesteps, scheduler.init_noise_sigma
    shape = rgb.shape[2:]

    def unet(depth, frames_range, timestep_per_frame):
        s = frames_range
        return model.unet(torch.cat([rgb[:, s], depth], 2), timestep_per_frame, tokens[s], ids).sample

    horizon = min(count, n_tokens)
    depth = torch.randn(1, horizon, *shape, generator=generator) * init_sigma
    for t in timesteps:
        depth = scheduler.scale_model_input(depth, t)
        depth = scheduler.step(unet(depth, slice(0, horizon), t.repeat(horizon)), t, depth).prev_sample
    scheduler._step_index = None
    current = horizon
    while current < count:
        horizon = min(count - current, chunk_size)
        start = max(0, current + horizon - n_tokens)
        window = slice(start, current + horizon)
        if mode == "naive":
            chunk = torch.randn(1, current + horizon - start, *shape, generator=generator) * init_sigma
            for t in timesteps:
                chunk = scheduler.scale_model_input(chunk, t)
                chunk = scheduler.step(unet(chunk, window, t.repeat(chunk.shape[1])), t, chunk).prev_sample
            depth = torch.cat([depth, chunk[:, -horizon:]], dim=1)
        else:
            depth = torch.cat(
                [depth, torch.randn(1, horizon, *shape, generator=generator) * init_sigma], dim=1
            )
            clean = depth[:, start:current].clone()
            for i, t in enumerate(timesteps):
                if mode == "chronodepth":
                    labels = torch.cat([torch.full((current - start,), sigma_epsilon), t.repeat(horizon)])
                    depth[:, current:] = scheduler.scale_model_input(depth[:, current:], t)
                    out = unet(depth[:, start:], window, labels)
                    depth[:, current:] = scheduler.step(out[:, -horizon:], t, depth[:, current:]).prev_sample
                else:  # replacement
                    eps = torch.randn(clean.shape, generator=generator)
                    depth[:, start:current] = clean + eps * scheduler.sigmas[i]
                    depth[:, start:] = scheduler.scale_model_input(depth[:, start:], t)
                    out = unet(depth[:, start:], window, t.repeat(current + horizon - start))
                    depth[:, start:] = scheduler.step(out, t, depth[:, start:]).prev_sample
            if mode == "replacement":
                depth[:, start:current] = clean
        scheduler._step_index = None
        current += horizon
    return min_max(decode_all(model, depth, channel_clamp_first=False))


@pytest.fixture(scope="module")
def depthcrafter(tiny_models):
    return DepthModel.from_pretrained(tiny_models["depthcrafter"], base=tiny_models["depthcrafter_base"])


@pytest.fixture(scope="module")
def chronodepth(tiny_models):
    return DepthModel.from_pretrained(tiny_models["chronodepth"], base=tiny_models["chronodepth_base"])


@pytest.mark.parametrize(
    "count, window, overlap, steps, guidance",
    [(19, 8, 3, 3, 1.0), (7, 8, 3, 2, 1.0), (12, 6, 2, 1, 1.5)],
    ids=["multi-window", "single-window", "guided"],
)
def test_depthcrafter_strategy_matches_the_reference_algorithm(
    depthcrafter, count, window, overlap, steps, guidance
):
    frames = moving_frames(count, 32, 64, seed=count)
    ours = VideoDepthPipeline(depthcrafter)(
        frames,
        strategy="depthcrafter",
        window=window,
        overlap=overlap,
        steps=steps,
        guidance=guidance,
        seed=5,
        noise="reference",
    )
    expected = depthcrafter_whole_video(
        depthcrafter, frames, steps, window, overlap, seed=5, guidance=guidance
    )
    assert np.abs(ours - expected).max() <= TOLERANCE


@pytest.mark.parametrize("mode", ["chronodepth", "replacement", "naive"])
def test_sliding_strategies_match_the_reference_algorithm(chronodepth, mode):
    frames = moving_frames(14, 32, 64, seed=1)
    ours = VideoDepthPipeline(chronodepth)(
        frames, strategy=mode, window=6, context=3, steps=2, seed=9, noise="reference"
    )
    expected = chronodepth_whole_video(
        chronodepth, frames, steps=2, n_tokens=6, chunk_size=3, seed=9, mode=mode
    )
    assert np.abs(ours - expected).max() <= TOLERANCE
