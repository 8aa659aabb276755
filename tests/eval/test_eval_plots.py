"""Temporal profile and metric-curve figures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from videodepth.errors import InputError, OutputError
from videodepth.eval.plots import metric_curves, temporal_profile, yt_slice


def test_yt_slice_puts_rows_down_and_time_across():
    video = np.arange(4 * 3 * 5).reshape(4, 3, 5)
    profile = yt_slice(video, 2)
    assert profile.shape == (3, 4)
    assert all((profile[:, t] == video[t, :, 2]).all() for t in range(4))
    assert yt_slice(np.zeros((4, 3, 5, 3), np.uint8), -1).shape == (3, 4, 3)
    with pytest.raises(InputError, match="outside a video 5 pixels wide"):
        yt_slice(video, 5)


def test_temporal_profile_writes_a_png_of_the_requested_size(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (10, 8, 6, 3)).astype(np.uint8)
    depth = rng.random((10, 8, 6))
    out = temporal_profile(
        {"input": yt_slice(rgb, 3), "ours": yt_slice(depth, 3), "flat": np.ones((8, 10))},
        tmp_path / "figs" / "profile.png",
        title="y-t slice at x=3",
        size_px=(640, 240),
    )
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (640, 240)
    grid = temporal_profile(
        {f"m{i}": depth[:, :, 0].T for i in range(5)}, tmp_path / "grid.png", size_px=(600, 400), per_row=2
    )  # 3 rows, the sixth cell left empty
    with Image.open(grid) as image:
        assert image.size == (600, 400)


def test_metric_curves_writes_a_png_of_the_requested_size(tmp_path):
    curves = {"a": np.linspace(0.1, 0.2, 12), "b": np.r_[np.nan, np.full(11, 0.15)]}
    out = metric_curves(curves, tmp_path / "curves.png", ylabel="AbsRel", size_px=(500, 300))
    with Image.open(out) as image:
        assert image.size == (500, 300)


def test_plot_errors_are_user_errors(tmp_path):
    with pytest.raises(InputError, match="at least one slice"):
        temporal_profile({}, tmp_path / "x.png")
    with pytest.raises(InputError, match="slice 'bad' must be"):
        temporal_profile({"bad": np.zeros((2, 3, 4, 5))}, tmp_path / "x.png")
    with pytest.raises(InputError, match="curve 'c' must be one value per frame"):
        metric_curves({"c": np.zeros((2, 2))}, tmp_path / "x.png", ylabel="y")
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OutputError, match="cannot write figure"):
        metric_curves({"c": np.zeros(3)}, tmp_path / "file" / "x.png", ylabel="y")
