"""Accuracy metrics on hand-computed cases (DepthCrafter protocol)."""

from __future__ import annotations

import numpy as np
import pytest

from videodepth.errors import InputError
from videodepth.eval import metrics as m


def test_valid_mask_is_strict_on_both_ends_and_drops_nan():
    gt = np.array([0.0, 1e-3, 0.5, 9.99, 10.0, 70.0, np.nan])
    assert m.valid_mask(gt, 10.0).tolist() == [False, False, True, True, False, False, False]


def test_dataset_defaults_follow_the_reference_scripts():
    assert m.DATASET_MAX_DEPTH["sintel"] == 70 and m.DATASET_MAX_DEPTH["kitti"] == 80
    assert all(m.DATASET_MAX_DEPTH[name] == 10 for name in ("scannet", "bonn", "nyu"))
    assert m.DATASET_SEQ_LEN == {"sintel": 50, "scannet": 90, "kitti": 110, "bonn": 110, "nyu": 1}
    assert m.dataset_max_depth("KITTI") == 80
    with pytest.raises(InputError, match="unknown dataset 'mars'"):
        m.dataset_max_depth("mars")


def test_known_scale_and_shift_are_recovered_exactly():
    rng = np.random.default_rng(3)
    gt = rng.uniform(0.5, 9.0, (4, 6, 8))
    scale, shift = 2.5, 0.04
    # The protocol fits against 1 / (gt + 1e-8); building pred from the same target makes the fit exact.
    pred = (1.0 / (gt + m.GT_INVERSE_EPS) - shift) / scale
    fitted = m.fit_scale_shift(pred, gt, m.valid_mask(gt, 10.0))
    assert fitted == pytest.approx((scale, shift), abs=1e-10)


def test_fit_ignores_invalid_pixels():
    gt = np.full((2, 3, 3), 2.0)
    pred = np.full((2, 3, 3), 0.25)  # disparity 1/2 after scale 2
    pred[0, 0, 0] = 1000.0
    gt[0, 0, 0] = 0.0  # invalid, so the outlier must not move the fit
    pred[1, 1, 1], gt[1, 1, 1] = 0.5, 1.0
    scale, shift = m.fit_scale_shift(pred, gt, m.valid_mask(gt, 10.0))
    assert scale == pytest.approx(2.0, abs=1e-6) and shift == pytest.approx(0.0, abs=1e-6)


def test_perfect_prediction_scores_zero_error_and_full_accuracy():
    gt = np.random.default_rng(0).uniform(0.5, 60.0, (5, 7, 9))
    result = m.evaluate_video(1.0 / gt, gt, max_depth=70.0)
    assert result["abs_rel"] == pytest.approx(0.0, abs=1e-7)
    assert result["rmse"] == pytest.approx(0.0, abs=1e-5)
    assert result["delta1"] == result["delta2"] == result["delta3"] == 1.0
    assert result["scale"] == pytest.approx(1.0) and result["shift"] == pytest.approx(0.0, abs=1e-9)
    assert result["frames"] == 5


def test_metrics_on_a_hand_computed_2x2_frame():
    pred = np.array([[1.0, 2.0], [3.0, 3.8]])
    gt = np.full((2, 2), 2.0)
    valid = np.ones((2, 2), dtype=bool)
    # |pred - gt| / gt = 0.5, 0, 0.5, 0.9; max(pred/gt, gt/pred) = 2, 1, 1.5, 1.9
    assert m.abs_rel(pred, gt, valid) == pytest.approx(1.9 / 4)
    assert m.rmse(pred, gt, valid) == pytest.approx(np.sqrt((1 + 0 + 1 + 1.8**2) / 4))
    assert m.delta(pred, gt, valid, 1) == 0.25  # only 1 < 1.25
    assert m.delta(pred, gt, valid, 2) == 0.5  # 1.5 < 1.5625
    assert m.delta(pred, gt, valid, 3) == 0.75  # 1.9 < 1.953125


def test_metrics_average_per_frame_not_per_pixel_and_skip_empty_frames():
    gt = np.full((3, 2, 2), 2.0)
    pred = np.full((3, 2, 2), 2.0)
    pred[0] = 3.0  # frame 0: AbsRel 0.5 on 4 pixels
    gt[1] = [[2.0, 0.0], [0.0, 0.0]]  # frame 1: AbsRel 0 on 1 pixel
    gt[2] = 0.0  # frame 2: no valid pixel, left out
    valid = m.valid_mask(gt, 10.0)
    assert m.abs_rel_per_frame(pred, gt, valid)[:2].tolist() == [0.5, 0.0]
    assert np.isnan(m.abs_rel_per_frame(pred, gt, valid)[2])
    assert m.abs_rel(pred, gt, valid) == 0.25  # pixel-weighted would be 0.4


def test_alignment_clips_disparity_and_depth_range():
    pred = np.array([[[0.5, -1.0, 100.0, 0.05]]])
    depth = m.apply_scale_shift(pred, scale=1.0, shift=0.0, max_depth=10.0)
    # disparity clipped at 1e-3 -> depth 1000 -> clipped to max_depth; 1/100 = 0.01 stays above 1e-3
    assert depth.tolist() == [[[2.0, 10.0, 0.01, 10.0]]]


def test_evaluate_video_applies_seq_len_before_fitting_and_resizes_prediction():
    rng = np.random.default_rng(1)
    gt = rng.uniform(1.0, 8.0, (6, 8, 10))
    pred = 1.0 / gt + rng.normal(0, 0.02, gt.shape)
    first_three = m.evaluate_video(pred[:3], gt[:3], 10.0)
    assert m.evaluate_video(pred, gt, 10.0, seq_len=3) == first_three
    # A shorter prediction shortens the clip, as in the reference.
    assert m.evaluate_video(pred[:3], gt, 10.0, seq_len=90) == first_three
    half = np.full((6, 4, 5), 0.3)
    assert m.evaluate_video(half, gt, 10.0)["frames"] == 6


def test_explicit_valid_mask_is_combined_with_the_range_mask():
    gt = np.full((1, 2, 2), 2.0)
    gt[0, 0, 0] = 50.0  # out of range for max depth 10 even though the explicit mask allows it
    pred = np.array([[[1.0, 0.5], [0.5, 0.25]]])
    valid = np.array([[[True, True], [True, False]]])
    result = m.evaluate_video(pred, gt, 10.0, valid=valid)
    assert result["frames"] == 1 and result["abs_rel"] == pytest.approx(0.0, abs=1e-7)


def test_user_errors_are_one_line_input_errors():
    gt = np.ones((2, 3, 3))
    with pytest.raises(InputError, match=r"shape mismatch: prediction \[2, 3, 4\]"):
        m.fit_scale_shift(np.ones((2, 3, 4)), gt, np.ones((2, 3, 3), bool))
    with pytest.raises(InputError, match="no valid ground-truth pixels"):
        m.evaluate_video(np.ones((2, 3, 3)), np.zeros((2, 3, 3)), 10.0)
    with pytest.raises(InputError, match="prediction has 2 frames but ground truth has 3"):
        m.evaluate_video(np.ones((2, 3, 3)), np.ones((3, 3, 3)), 10.0)
    with pytest.raises(InputError, match="delta threshold exponent"):
        m.delta(gt, gt, gt > 0, 4)
    with pytest.raises(InputError, match=r"must have shape \[T, H, W\]"):
        m.fit_scale_shift(np.ones(3), np.ones(3), np.ones(3, bool))


def test_row_variance_share_tells_a_layout_from_depth():
    from videodepth.eval.metrics import row_variance_share

    rows = np.linspace(0, 1, 32)[None, :, None] * np.ones((3, 32, 48))
    assert row_variance_share(rows) == pytest.approx(1.0)
    columns = np.swapaxes(np.linspace(0, 1, 48)[None, :, None] * np.ones((3, 48, 32)), 1, 2)
    assert row_variance_share(columns) == pytest.approx(0.0, abs=1e-12)
    # a separable sum: the rows explain their own part of the variance, (n + 1) / 12 (n - 1) for n steps
    mixed = rows + columns
    var_rows, var_columns = 33 / (12 * 31), 49 / (12 * 47)
    assert row_variance_share(mixed) == pytest.approx(var_rows / (var_rows + var_columns))
    assert np.isnan(row_variance_share(np.zeros((2, 4, 4))))
