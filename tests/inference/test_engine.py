"""The streaming engine keeps memory bounded by the window, not by the video."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import moving_frames
from videodepth.inference import windows
from videodepth.inference.pipeline import VideoDepthPipeline
from videodepth.inference.settings import RunSettings
from videodepth.models.architectures import random_model


@pytest.mark.parametrize("strategy", ["depthcrafter", "chronodepth"])
def test_frames_are_pulled_lazily_and_released(strategy, monkeypatch):
    pipeline = VideoDepthPipeline(random_model("videodepth", seed=0))
    frames = moving_frames(40, 32, 64)
    pulled, cached, emitted = [], [], []

    def open_frames(start):
        for index in range(start, len(frames)):
            pulled.append(index)
            yield frames[index]

    original_get = windows.ConditionCache.get

    def recording_get(self, window_frames):
        result = original_get(self, window_frames)
        cached.append(len(self.latents))
        return result

    monkeypatch.setattr(windows.ConditionCache, "get", recording_get)

    def sink(start, depth):
        emitted.append((start, len(depth), len(pulled)))

    settings = RunSettings(strategy=strategy, steps=1, window=6, overlap=2, context=3, decode_chunk_size=4)
    pipeline.run(open_frames, len(frames), (32, 64), settings, sink, progress=False)

    assert pulled == list(range(40))  # every frame decoded exactly once, in order
    assert max(cached) <= settings.window + settings.decode_chunk_size
    # output starts long before the input is exhausted, and covers every frame once
    assert emitted[0][2] < 20
    assert [start for start, _, _ in emitted] == list(range(0, 40, 4))
    assert sum(count for _, count, _ in emitted) == 40


def test_frame_keyed_results_do_not_depend_on_decode_grouping_of_input():
    pipeline = VideoDepthPipeline(random_model("videodepth", seed=0))
    frames = moving_frames(11, 32, 64)
    settings = RunSettings(strategy="chronodepth", steps=2, window=5, context=2, seed=3)
    whole = pipeline(
        frames, **{k: getattr(settings, k) for k in ("strategy", "steps", "window", "context", "seed")}
    )
    collected = np.zeros(frames.shape[:3], np.float32)

    def sink(start, depth):
        collected[start : start + len(depth)] = depth

    pipeline.run(lambda s: (f for f in frames[s:]), len(frames), (32, 64), settings, sink, progress=False)
    normalised = (collected - collected.min()) / (collected.max() - collected.min())
    assert np.abs(normalised - whole).max() < 1e-6
