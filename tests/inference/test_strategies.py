"""Window plans and stitching of every long-video strategy, with a stand-in sampler."""

from __future__ import annotations

import pytest
import torch

from videodepth.errors import InputError
from videodepth.inference.strategies import STRATEGIES, Window, make_strategy

LATENT = (1, 2, 2)


class RecordingSampler:
    """Returns, for every frame, its index plus a per-call offset, and records every call."""

    def __init__(self):
        self.sigmas = torch.tensor([10.0, 1.0, 0.0])
        self.init_noise_sigma = 10.0
        self.calls: list[dict] = []

    def noise_latents(self, frames: range) -> torch.Tensor:
        return torch.stack([torch.full(LATENT, 100.0 + f) for f in frames]).unsqueeze(0)

    def renoise(self, frames: range, step: int) -> torch.Tensor:
        return torch.zeros(1, len(frames), *LATENT)

    def sample(self, x, frames, context=None, context_sigma=None, before_step=None):
        if before_step is not None:
            x = before_step(x, 0)
        call = len(self.calls)
        self.calls.append({"frames": frames, "x": x.clone(), "context": context, "context_sigma": context_sigma})
        first = frames.stop - x.shape[1]
        return torch.stack([torch.full(LATENT, float(f) + 1000.0 * call) for f in range(first, frames.stop)])[None]


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("num_frames", [1, 4, 7, 13, 26, 41])
def test_plans_cover_every_frame_once_in_order(name, num_frames):
    strategy = make_strategy(name, window=7, overlap=3, context=3)
    windows = strategy.plan(num_frames)
    emitted = [f for w in windows for f in w.emits]
    assert emitted == list(range(num_frames))
    for window in windows:
        assert window.frames.start <= window.emits.start and window.emits.stop <= window.frames.stop
        if name != "single":
            assert len(window.frames) <= 7


def test_depthcrafter_plan_by_hand():
    plan = make_strategy("depthcrafter", window=8, overlap=3, context=0).plan(26)
    assert plan == [
        Window(range(0, 8), range(0, 5)), Window(range(5, 13), range(5, 10)), Window(range(10, 18), range(10, 15)),
        Window(range(15, 23), range(15, 20)), Window(range(20, 26), range(20, 26)),
    ]
    assert make_strategy("depthcrafter", window=8, overlap=3, context=0).plan(8) == [Window(range(8), range(8))]


def test_sliding_plan_by_hand():
    plan = make_strategy("chronodepth", window=6, overlap=0, context=3).plan(13)
    assert plan == [
        Window(range(0, 6), range(0, 6)), Window(range(3, 9), range(6, 9)),
        Window(range(6, 12), range(9, 12)), Window(range(7, 13), range(12, 13)),
    ]


def run_all(strategy, num_frames):
    sampler = RecordingSampler()
    state = strategy.initial_state(sampler, num_frames)
    outputs = [strategy.run(sampler, window, state) for window in strategy.plan(num_frames)]
    return sampler, torch.cat(outputs, dim=1)


@pytest.mark.parametrize("blend", ["linear", "average"])
def test_depthcrafter_anchors_and_blends_the_overlap(blend):
    strategy = make_strategy("depthcrafter", window=6, overlap=3, context=0, blend=blend)
    sampler, out = run_all(strategy, 9)  # windows [0, 6) and [3, 9)
    second = sampler.calls[1]
    # anchoring: the overlap starts from the first window's result plus noise scaled to sigma_0
    rotated_noise = torch.tensor([103.0, 104.0, 105.0])  # the first draw rotated by the stride
    expected_start = torch.tensor([3.0, 4.0, 5.0]) + rotated_noise / 10.0 * 10.0
    assert torch.allclose(second["x"][0, :3, 0, 0, 0], expected_start)
    # blending: old window (value f) and new window (value f + 1000) mixed by the ramp
    ramp = torch.tensor([0.0, 0.5, 1.0]) if blend == "linear" else torch.full((3,), 0.5)
    assert torch.allclose(out[0, 3:6, 0, 0, 0], torch.tensor([3.0, 4.0, 5.0]) + 1000.0 * ramp)
    assert torch.allclose(out[0, 6:, 0, 0, 0], torch.tensor([1006.0, 1007.0, 1008.0]))


def test_depthcrafter_without_noise_init_starts_from_noise():
    strategy = make_strategy("depthcrafter", window=6, overlap=3, context=0, noise_init=False)
    sampler, _ = run_all(strategy, 9)
    assert torch.allclose(sampler.calls[1]["x"][0, :, 0, 0, 0], torch.tensor([103.0, 104, 105, 100, 101, 102]))


def test_chronodepth_feeds_clean_context_with_tiny_sigma():
    strategy = make_strategy("chronodepth", window=6, overlap=0, context=3, sigma_epsilon=-4.0)
    sampler, out = run_all(strategy, 12)
    call = sampler.calls[1]  # frames [3, 9), context = first window's results for frames 3..5
    assert call["frames"] == range(3, 9)
    assert torch.equal(call["context"][0, :, 0, 0, 0], torch.tensor([3.0, 4.0, 5.0]))
    assert call["context_sigma"] == pytest.approx(float(torch.exp(torch.tensor(-16.0))))
    assert torch.equal(sampler.calls[2]["context"][0, :, 0, 0, 0], torch.tensor([1006.0, 1007.0, 1008.0]))
    assert torch.equal(out[0, :, 0, 0, 0], torch.tensor([0, 1, 2, 3, 4, 5, 1006, 1007, 1008, 2009, 2010, 2011.0]))


def test_replacement_renoises_context_and_naive_ignores_it():
    sampler, out = run_all(make_strategy("replacement", window=6, overlap=0, context=3), 9)
    # before each step the context is the clean result plus (zero) noise times sigma
    assert torch.equal(sampler.calls[1]["x"][0, :3, 0, 0, 0], torch.tensor([3.0, 4.0, 5.0]))
    assert torch.equal(out[0, 6:, 0, 0, 0], torch.tensor([1006.0, 1007.0, 1008.0]))
    sampler, out = run_all(make_strategy("naive", window=6, overlap=0, context=3), 9)
    assert sampler.calls[1]["context"] is None
    assert torch.equal(sampler.calls[1]["x"][0, :, 0, 0, 0], torch.tensor([103.0, 104, 105, 106, 107, 108]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "depthcrafter", "window": 5, "overlap": 5, "context": 0}, "--overlap"),
        ({"name": "chronodepth", "window": 5, "overlap": 0, "context": 5}, "--context"),
        ({"name": "zigzag", "window": 5, "overlap": 0, "context": 0}, "unknown strategy"),
        ({"name": "naive", "window": 0, "overlap": 0, "context": 0}, "--window"),
    ],
)
def test_bad_strategy_settings(kwargs, message):
    with pytest.raises(InputError, match=message):
        make_strategy(**kwargs)
