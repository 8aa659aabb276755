"""Flow-warping flicker score on synthetic videos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from videodepth.errors import InputError
from videodepth.eval.flicker import flicker, flicker_per_frame, normalise_disparity

HEIGHT, WIDTH, FRAMES = 48, 64, 4


def textured(width: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 256, (HEIGHT, width, 3)).astype(np.uint8)
    return cv2.GaussianBlur(noise, (5, 5), 0)


def ramp(width: int) -> np.ndarray:
    return np.repeat(np.linspace(1.0, 3.0, width)[None], HEIGHT, axis=0)


def test_constant_prediction_on_static_video_scores_zero():
    rgb = np.stack([textured(WIDTH)] * FRAMES)
    assert flicker(rgb, np.full((FRAMES, HEIGHT, WIDTH), 0.7)) == 0.0


def test_flickering_prediction_on_static_video_scores_its_frame_difference():
    rgb = np.stack([textured(WIDTH)] * FRAMES)
    disparity = np.stack([ramp(WIDTH) * (1.0 + 0.2 * (t % 2)) for t in range(FRAMES)])
    normalised = normalise_disparity(disparity)
    expected = np.mean(np.abs(normalised[0] - normalised[1]))  # zero flow on a static video
    assert expected > 0.1
    assert flicker_per_frame(rgb, disparity) == pytest.approx([expected] * (FRAMES - 1), rel=1e-4)


def test_score_ignores_global_scale_and_shift_and_is_deterministic():
    rgb = np.stack([textured(WIDTH)] * FRAMES)
    disparity = np.stack([ramp(WIDTH) + 0.1 * t for t in range(FRAMES)])
    score = flicker(rgb, disparity)
    assert score == flicker(rgb, disparity)
    assert flicker(rgb, 4.0 * disparity + 2.0) == pytest.approx(score, rel=1e-6)


def test_prediction_moving_with_the_scene_is_steadier_than_a_frozen_one():
    shift = 2  # pixels per frame, a camera pan
    scene, depth = textured(WIDTH + shift * FRAMES, seed=1), ramp(WIDTH + shift * FRAMES)
    rgb = np.stack([scene[:, shift * t : shift * t + WIDTH] for t in range(FRAMES)])
    following = np.stack([depth[:, shift * t : shift * t + WIDTH] for t in range(FRAMES)])
    frozen = np.stack([following[0]] * FRAMES)
    assert flicker(rgb, following) < 0.01 < flicker(rgb, frozen)


def test_bad_inputs_are_input_errors():
    rgb = np.zeros((2, HEIGHT, WIDTH, 3), np.uint8)
    with pytest.raises(InputError, match="rgb must be uint8"):
        flicker(rgb.astype(np.float32), np.zeros((2, HEIGHT, WIDTH)))
    with pytest.raises(InputError, match="does not match rgb"):
        flicker(rgb, np.zeros((2, HEIGHT, WIDTH + 1)))
    with pytest.raises(InputError, match="at least 2 frames"):
        flicker(rgb[:1], np.zeros((1, HEIGHT, WIDTH)))
