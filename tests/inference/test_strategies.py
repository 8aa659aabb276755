"""Window plans and stitching of every long-video strategy, with a stand-in sampler."""

from __future__ import annotations

import pytest
import torch

from videodepth import choices
from videodepth.errors import InputError
from videodepth.inference.strategies import (
    STRATEGIES,
    ChronoDepthWindows,
    DepthCrafterWindows,
    NaiveWindows,
    ReplacementWindows,
    SingleWindow,
    Window,
    check_options,
    strategy_from_settings,
)

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
        self.calls.append(
            {"frames": frames, "x": x.clone(), "context": context, "context_sigma": context_sigma}
        )
        first = frames.stop - x.shape[1]
        return torch.stack([torch.full(LATENT, float(f) + 1000.0 * call) for f in range(first, frames.stop)])[
            None
        ]


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("num_frames", [1, 4, 7, 13, 26, 41])
def test_plans_cover_every_frame_once_in_order(name, num_frames):
    strategy = strategy_from_settings(name, window=7, overlap=3, context=3)
    windows = strategy.plan(num_frames)
    emitted = [f for w in windows for f in w.emits]
    assert emitted == list(range(num_frames))
    for window in windows:
        assert window.frames.start <= window.emits.start and window.emits.stop <= window.frames.stop
        if name != "single":
            assert len(window.frames) <= 7


def test_depthcrafter_plan_by_hand():
    plan = strategy_from_settings("depthcrafter", window=8, overlap=3, context=0).plan(26)
    assert plan == [
        Window(range(0, 8), range(0, 5)),
        Window(range(5, 13), range(5, 10)),
        Window(range(10, 18), range(10, 15)),
        Window(range(15, 23), range(15, 20)),
        Window(range(20, 26), range(20, 26)),
    ]
    assert strategy_from_settings("depthcrafter", window=8, overlap=3, context=0).plan(8) == [
        Window(range(8), range(8))
    ]


def test_sliding_plan_by_hand():
    plan = strategy_from_settings("chronodepth", window=6, overlap=0, context=3).plan(13)
    assert plan == [
        Window(range(0, 6), range(0, 6)),
        Window(range(3, 9), range(6, 9)),
        Window(range(6, 12), range(9, 12)),
        Window(range(7, 13), range(12, 13)),
    ]


def run_all(strategy, num_frames):
    sampler = RecordingSampler()
    state = strategy.initial_state(sampler, num_frames)
    outputs = [strategy.run(sampler, window, state) for window in strategy.plan(num_frames)]
    return sampler, torch.cat(outputs, dim=1)


@pytest.mark.parametrize("blend", ["linear", "average"])
def test_depthcrafter_anchors_and_blends_the_overlap(blend):
    strategy = strategy_from_settings("depthcrafter", window=6, overlap=3, context=0, blend=blend)
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
    strategy = strategy_from_settings("depthcrafter", window=6, overlap=3, context=0, noise_init=False)
    sampler, _ = run_all(strategy, 9)
    assert torch.allclose(
        sampler.calls[1]["x"][0, :, 0, 0, 0], torch.tensor([103.0, 104, 105, 100, 101, 102])
    )


def test_chronodepth_feeds_clean_context_with_tiny_sigma():
    strategy = strategy_from_settings("chronodepth", window=6, overlap=0, context=3, sigma_epsilon=-4.0)
    sampler, out = run_all(strategy, 12)
    call = sampler.calls[1]  # frames [3, 9), context = first window's results for frames 3..5
    assert call["frames"] == range(3, 9)
    assert torch.equal(call["context"][0, :, 0, 0, 0], torch.tensor([3.0, 4.0, 5.0]))
    assert call["context_sigma"] == pytest.approx(float(torch.exp(torch.tensor(-16.0))))
    assert torch.equal(sampler.calls[2]["context"][0, :, 0, 0, 0], torch.tensor([1006.0, 1007.0, 1008.0]))
    assert torch.equal(
        out[0, :, 0, 0, 0], torch.tensor([0, 1, 2, 3, 4, 5, 1006, 1007, 1008, 2009, 2010, 2011.0])
    )


def test_replacement_renoises_context_and_naive_ignores_it():
    sampler, out = run_all(strategy_from_settings("replacement", window=6, overlap=0, context=3), 9)
    # before each step the context is the clean result plus (zero) noise times sigma
    assert torch.equal(sampler.calls[1]["x"][0, :3, 0, 0, 0], torch.tensor([3.0, 4.0, 5.0]))
    assert torch.equal(out[0, 6:, 0, 0, 0], torch.tensor([1006.0, 1007.0, 1008.0]))
    sampler, out = run_all(strategy_from_settings("naive", window=6, overlap=0, context=3), 9)
    assert sampler.calls[1]["context"] is None
    assert torch.equal(sampler.calls[1]["x"][0, :, 0, 0, 0], torch.tensor([103.0, 104, 105, 106, 107, 108]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "depthcrafter", "window": 5, "overlap": 5, "context": 0}, "--overlap"),
        ({"name": "chronodepth", "window": 5, "overlap": 0, "context": 5}, "--context"),
        ({"name": "zigzag", "window": 5, "overlap": 0, "context": 0}, "unknown strategy"),
        ({"name": "naive", "window": 0, "overlap": 0, "context": 0}, "window"),
    ],
)
def test_bad_strategy_settings(kwargs, message):
    with pytest.raises(InputError, match=message):
        strategy_from_settings(kwargs.pop("name"), **kwargs)


def test_registry_names_are_the_command_lines_choices():
    assert tuple(STRATEGIES) == choices.STRATEGIES
    assert {name: cls.name for name, cls in STRATEGIES.items()} == {name: name for name in choices.STRATEGIES}
    with pytest.raises(
        InputError,
        match=r"^unknown strategy 'zigzag'; choose one of depthcrafter, chronodepth, "
        r"replacement, naive, single$",
    ):
        strategy_from_settings("zigzag", window=5)


@pytest.mark.parametrize(
    "cls, options, message",
    [
        (DepthCrafterWindows, {"window": 0}, "window must be an integer >= 1, got 0"),
        (DepthCrafterWindows, {"window": 2.5}, "window must be an integer >= 1, got 2.5"),
        (DepthCrafterWindows, {"overlap": -1}, "overlap must be an integer >= 0, got -1"),
        (
            DepthCrafterWindows,
            {"window": 4, "overlap": 4},
            r"--overlap must be in \[0, window\) but is 4 with window 4",
        ),
        (DepthCrafterWindows, {"blend": "max"}, "unknown blend 'max'; use linear or average"),
        (DepthCrafterWindows, {"noise_init": "no"}, "noise-init must be true or false, got 'no'"),
        (ChronoDepthWindows, {"context": -2}, "context must be an integer >= 0, got -2"),
        (
            ChronoDepthWindows,
            {"window": 3, "context": 3},
            r"--context must be in \[0, window\) but is 3 with window 3",
        ),
        (
            ChronoDepthWindows,
            {"sigma_epsilon": float("inf")},
            "sigma-epsilon must be a finite number, got inf",
        ),
        (ReplacementWindows, {"window": True}, "window must be an integer >= 1, got True"),
        (NaiveWindows, {"context": 10}, r"--context must be in \[0, window\) but is 10 with window 10"),
    ],
)
def test_each_strategy_refuses_its_own_bad_options_in_one_line(cls, options, message):
    with pytest.raises(InputError, match=f"^{message}$"):
        cls(**options)
    with pytest.raises(InputError, match=f"^{message}$"):  # the same through the registry
        strategy_from_settings(cls.name, **options)


def test_the_registry_passes_each_strategy_only_its_own_options():
    flat = {
        "strategy": "x",
        "steps": 3,
        "seed": 1,
        "window": 6,
        "overlap": 2,
        "context": 3,
        "sigma_epsilon": -2.0,
        "noise_init": False,
        "blend": "average",
        "noise": "frame",
    }
    assert strategy_from_settings("depthcrafter", **flat) == DepthCrafterWindows(6, 2, False, "average")
    assert strategy_from_settings("chronodepth", **flat) == ChronoDepthWindows(6, 3, -2.0)
    assert strategy_from_settings("replacement", **flat) == ReplacementWindows(6, 3)
    assert strategy_from_settings("naive", **flat) == NaiveWindows(6, 3)
    assert strategy_from_settings("single", **flat) == SingleWindow()
    # options of other strategies are not the chosen one's business, however wrong
    wrong_elsewhere = {"window": 6, "context": 3, "overlap": 6, "blend": "max", "noise_init": "no"}
    assert strategy_from_settings("naive", **wrong_elsewhere) == NaiveWindows(6, 3)
    assert strategy_from_settings("depthcrafter", overlap=30) == DepthCrafterWindows(
        overlap=30
    )  # class defaults
    # ... but check_options refuses each bad option on its own, whichever strategy declares it
    with pytest.raises(InputError, match="^unknown blend 'max'; use linear or average$"):
        check_options(**wrong_elsewhere)
    check_options(window=6, context=3, overlap=6, steps=-5)  # no relations, and no non-options
