"""atomic_file / atomic_dir / ensure_writable_dir, and the colour-map helpers."""

from __future__ import annotations

import os

import matplotlib
import numpy as np
import pytest

from videodepth.errors import InputError, OutputError
from videodepth.io import (
    COLORMAPS,
    atomic_dir,
    atomic_file,
    colorize,
    ensure_writable_dir,
    normalize,
    percentile_range,
)


def test_atomic_file_keeps_suffix_and_replaces_on_success(tmp_path):
    target = tmp_path / "clip.mp4"
    target.write_text("old")
    with atomic_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp.name.startswith(".clip.partial-")
        assert str(os.getpid()) in tmp.name
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing visible until the block succeeds
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["clip.mp4"]


def test_atomic_file_removes_temp_on_exception(tmp_path):
    target = tmp_path / "clip.npz"
    with pytest.raises(KeyError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise KeyError("interrupted")
    assert os.listdir(tmp_path) == []


def test_atomic_dir_replaces_existing_folder(tmp_path):
    target = tmp_path / "frames"
    target.mkdir()
    (target / "stale.png").write_text("x")
    with atomic_dir(target) as tmp:
        (tmp / "000000.png").write_text("y")
        assert (target / "stale.png").exists()
    assert os.listdir(target) == ["000000.png"]
    assert os.listdir(tmp_path) == ["frames"]
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "000001.png").write_text("z")
        raise RuntimeError
    assert os.listdir(target) == ["000000.png"] and os.listdir(tmp_path) == ["frames"]


def test_ensure_writable_dir(tmp_path):
    created = ensure_writable_dir(tmp_path / "a" / "b")
    assert created.is_dir() and os.listdir(created) == []
    (tmp_path / "plain").write_text("x")
    for bad in (tmp_path / "plain", tmp_path / "plain" / "sub"):
        with pytest.raises(OutputError, match="plain") as caught:
            ensure_writable_dir(bad)
        assert "\n" not in str(caught.value)


def test_colorize_matches_matplotlib_at_the_ends():
    image = colorize(np.array([[0.0, 1.0], [np.nan, 2.0]], np.float32), "inferno")
    assert image.shape == (2, 2, 3) and image.dtype == np.uint8
    cmap = matplotlib.colormaps["inferno"]
    assert image[0, 0].tolist() == np.round(np.array(cmap(0.0)[:3]) * 255).astype(int).tolist()
    assert image[0, 1].tolist() == np.round(np.array(cmap(1.0)[:3]) * 255).astype(int).tolist()
    assert image[1, 0].tolist() == image[0, 0].tolist()  # NaN counts as far
    assert image[1, 1].tolist() == image[0, 1].tolist()  # clipped


def test_near_is_warm_or_bright_in_every_map():
    ends = np.array([[0.0, 1.0]], np.float32)
    gray = colorize(ends, "gray")
    assert gray[0, 0].tolist() == [0, 0, 0] and gray[0, 1].tolist() == [255, 255, 255]
    assert colorize(np.array([[0.5]]), "gray")[0, 0].tolist() == [128, 128, 128]
    for name in ("spectral", "turbo"):
        far, near = colorize(ends, name)[0].astype(int)
        assert near[0] > near[2] and far[2] > far[0], name  # near red, far blue
    for name in COLORMAPS:
        far, near = colorize(ends, name)[0].astype(int)
        assert near.sum() > far.sum() or name in ("spectral", "turbo"), name
    assert np.array_equal(colorize(ends, "Inferno"), colorize(ends, "inferno"))


def test_unknown_colormap_lists_the_valid_ones():
    with pytest.raises(
        InputError, match="unknown colour map 'jet'.*inferno, turbo, spectral, gray, magma, viridis"
    ):
        colorize(np.zeros((2, 2)), "jet")


def test_normalize_and_percentile_range():
    values = np.array([-1.0, 0.0, 2.0, 4.0, 5.0])
    assert normalize(values, 0.0, 4.0).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert normalize(values, 0.0, 4.0).dtype == np.float32
    assert normalize(values, 3.0, 3.0).tolist() == [0.0] * 5
    assert percentile_range(np.arange(101.0)) == (2.0, 98.0)
    assert percentile_range(np.array([np.nan, 1.0, np.inf]), 0, 100) == (1.0, 1.0)
    assert percentile_range(np.array([np.nan])) == (0.0, 1.0)
