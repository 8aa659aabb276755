"""Physics and contract tests for the per-frame depth effects and point cloud export."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from videodepth.apps.effects import (
    apply_matte,
    depth_slice,
    disparity_to_depth,
    fog,
    matte,
    refocus,
    stereo,
)
from videodepth.apps.pointcloud import PLY_VERTEX, backproject, pointcloud_preview, write_ply
from videodepth.apps.samples import demo_samples
from videodepth.errors import InputError, OutputError

H, W = 48, 64


def noise_rgb(height: int = H, width: int = W, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def read_ply(path: Path) -> tuple[list[str], np.ndarray]:
    """Independent minimal parser for the binary PLY files write_ply produces (checks the exact size)."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    count = int(next(line for line in header if line.startswith("element vertex")).split()[-1])
    layout = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")])
    assert len(data) == end + count * layout.itemsize
    return header, np.frombuffer(data[end:], dtype=layout, count=count)


# --------------------------------------------------------------------------------------------------- depth map


def test_disparity_to_depth_maps_ends_to_near_and_far_linearly_in_inverse_depth() -> None:
    disp = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    depth = disparity_to_depth(disp, near=1.0, far=10.0)
    # 1/depth = disp * (1/1 - 1/10) + 1/10 -> 0.1, 0.55, 1.0
    np.testing.assert_allclose(depth, [[10.0, 1.0 / 0.55, 1.0]], rtol=1e-6)


# --------------------------------------------------------------------------------------------------- fog


def test_fog_opacity_matches_beer_lambert_and_grows_with_depth() -> None:
    disp = np.tile(np.linspace(1.0, 0.0, W, dtype=np.float32), (H, 1))  # depth grows to the right
    black = np.zeros((H, W, 3), dtype=np.uint8)
    out = fog(black, disp, density=0.3, color=(255, 255, 255), near=1.0, far=10.0)
    opacity = out[0, :, 0].astype(np.float64) / 255.0
    assert np.all(np.diff(opacity) >= 0) and opacity[-1] > opacity[0]
    for col in (0, W // 3, W // 2, W - 1):
        d = float(disp[0, col])
        depth = 1.0 / (d * (1.0 - 0.1) + 0.1)
        expected = 1.0 - math.exp(-0.3 * depth)
        assert abs(opacity[col] - expected) <= 0.5 / 255 + 1e-9
    # Hand-computed ends: depth 1 -> 1 - e^-0.3 = 0.2592; depth 10 -> 1 - e^-3 = 0.9502.
    assert out[0, 0, 0] == round(255 * 0.259182) and out[0, -1, 0] == round(255 * 0.950213)


def test_fog_blends_towards_colour_and_zero_density_is_identity() -> None:
    rgb, disp = noise_rgb(), np.full((H, W), 0.0, dtype=np.float32)
    np.testing.assert_array_equal(fog(rgb, disp, density=0.0), rgb)
    thick = fog(rgb, disp, density=50.0, color=(10, 20, 30), far=10.0)
    assert np.all(thick == np.array([10, 20, 30], dtype=np.uint8))


# --------------------------------------------------------------------------------------------------- slice


def test_depth_slice_keeps_exactly_the_chosen_range() -> None:
    rng = np.random.default_rng(1)
    disp = (rng.integers(0, 9, (H, W)) / 8).astype(np.float32)  # exact eighths, boundaries included
    rgb = noise_rgb()
    rgba = depth_slice(rgb, disp, 0.25, 0.75)
    expected = (disp >= 0.25) & (disp <= 0.75)
    assert rgba.shape == (H, W, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[..., 3] == 255, expected)
    np.testing.assert_array_equal(rgba[..., 3] == 0, ~expected)
    np.testing.assert_array_equal(rgba[expected][:, :3], rgb[expected])
    black = depth_slice(rgb, disp, 0.25, 0.75, background="black")
    assert black.shape == (H, W, 3)
    np.testing.assert_array_equal(black[expected], rgb[expected])
    assert not black[~expected].any()
    assert expected.any() and (~expected).any()


# --------------------------------------------------------------------------------------------------- matte


def test_matte_is_one_in_front_zero_behind_and_monotone() -> None:
    disp = np.tile(np.linspace(0.0, 1.0, 101, dtype=np.float32), (3, 1))
    alpha = matte(disp, split=0.5, softness=0.2)
    assert alpha.dtype == np.float32 and alpha.shape == disp.shape
    assert np.all(alpha[:, disp[0] >= 0.61] == 1.0)
    assert np.all(alpha[:, disp[0] <= 0.39] == 0.0)
    assert np.all(np.diff(alpha[0]) >= 0)
    assert alpha[0, 50] == pytest.approx(0.5, abs=1e-6)
    hard = matte(disp, split=0.5, softness=0.0)
    np.testing.assert_array_equal(hard[0], (disp[0] >= 0.5).astype(np.float32))


def test_apply_matte_attaches_eight_bit_alpha_and_keeps_colour() -> None:
    rgb = noise_rgb()
    alpha = np.tile(np.linspace(0.0, 1.0, W, dtype=np.float32), (H, 1))
    rgba = apply_matte(rgb, alpha)
    assert rgba.shape == (H, W, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[..., :3], rgb)
    np.testing.assert_array_equal(rgba[..., 3], np.rint(alpha * 255).astype(np.uint8))


# --------------------------------------------------------------------------------------------------- refocus


def two_plane_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left half: flat red foreground at disparity 0.9. Right half: grey noise background at 0.1."""
    grey = np.random.default_rng(2).integers(0, 256, (H, W), dtype=np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    near = np.zeros((H, W), dtype=bool)
    near[:, : W // 2] = True
    rgb[near] = (255, 0, 0)
    disp = np.where(near, 0.9, 0.1).astype(np.float32)
    return rgb, disp, near


def test_refocus_keeps_in_focus_pixels_and_blurs_the_background_without_halo() -> None:
    rgb, disp, near = two_plane_scene()
    out = refocus(rgb, disp, focus=0.9, aperture=10.0, max_radius=6)
    np.testing.assert_array_equal(out[near], rgb[near])
    far_interior = (slice(8, H - 8), slice(W // 2 + 8, W - 8))
    assert out[far_interior].astype(float).var() < 0.3 * rgb[far_interior].astype(float).var()
    # The blurred background gathers only background (grey) colour, never the red foreground.
    far = out[~near].astype(int)
    assert np.abs(far[:, 0] - far[:, 1]).max() <= 1 and np.abs(far[:, 1] - far[:, 2]).max() <= 1


def test_refocus_on_background_blurs_foreground_and_zero_aperture_is_identity() -> None:
    rgb, disp, near = two_plane_scene()
    out = refocus(rgb, disp, focus=0.1, aperture=10.0, max_radius=6)
    np.testing.assert_array_equal(out[:, W // 2 + 7 :], rgb[:, W // 2 + 7 :])  # beyond the blur reach
    assert not np.array_equal(out[:, W // 2 : W // 2 + 3], rgb[:, W // 2 : W // 2 + 3])
    np.testing.assert_array_equal(refocus(rgb, disp, focus=0.5, aperture=0.0), rgb)


# --------------------------------------------------------------------------------------------------- stereo


def marker_column(image: np.ndarray) -> int:
    columns = np.flatnonzero((image == 255).all(axis=2).any(axis=0))
    assert len(columns) == 3, columns
    return int(columns[0])


@pytest.mark.parametrize(
    ("plane_disp", "baseline", "convergence"),
    [
        (0.5, 20.0, 0.5),
        (0.75, 20.0, 0.5),
        (1.0, 20.0, 0.5),
        (0.25, 20.0, 0.5),
        (0.0, 20.0, 0.5),
        (0.6, 10.0, 0.0),
    ],
)
def test_stereo_shift_is_baseline_times_disparity_minus_convergence(
    plane_disp: float, baseline: float, convergence: float
) -> None:
    rgb = np.full((H, W, 3), 40, dtype=np.uint8)
    rgb[20:23, 30:33] = 255  # the unique marker
    disp = np.full((H, W), plane_disp, dtype=np.float32)
    pair = stereo(rgb, disp, baseline_px=baseline, mode="left-right", convergence=convergence)
    assert pair.shape == (2, H, W, 3)
    np.testing.assert_array_equal(pair[0], rgb)
    expected_shift = baseline * (plane_disp - convergence)
    assert marker_column(pair[1]) == 30 - round(expected_shift)


def test_stereo_parallax_is_proportional_to_inverse_depth() -> None:
    near, far, baseline = 1.0, 10.0, 24.0
    shifts, inverse_depths = [], []
    for plane_disp in (0.0, 0.25, 0.5, 1.0):
        rgb = np.full((H, W, 3), 40, dtype=np.uint8)
        rgb[20:23, 40:43] = 255
        disp = np.full((H, W), plane_disp, dtype=np.float32)
        right = stereo(rgb, disp, baseline_px=baseline, mode="left-right", convergence=0.0)[1]
        shifts.append(40 - marker_column(right))
        inverse_depths.append(1.0 / float(disparity_to_depth(disp, near, far)[0, 0]))
    # shift = k * (1/depth - 1/far) with k = baseline / (1/near - 1/far)
    k = baseline / (1 / near - 1 / far)
    np.testing.assert_allclose(shifts, [k * (inv - 1 / far) for inv in inverse_depths], atol=0.5)


def test_stereo_near_wins_and_holes_fill_from_background() -> None:
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[..., 2] = 200  # blue background
    disp = np.zeros((H, W), dtype=np.float32)
    rgb[10:30, 20:40] = (255, 0, 0)  # red square in front
    disp[10:30, 20:40] = 1.0
    right = stereo(rgb, disp, baseline_px=8.0, mode="left-right", convergence=0.0)[1]
    red = (right == (255, 0, 0)).all(axis=2)
    expected = np.zeros((H, W), dtype=bool)
    expected[10:30, 12:32] = True  # moved left by 8 px, drawn over the background
    np.testing.assert_array_equal(red, expected)
    # The disoccluded strip [32, 40) shows background, never a smeared foreground.
    assert (right[10:30, 32:40] == (0, 0, 200)).all()


def test_stereo_layouts_sbs_and_anaglyph() -> None:
    rgb = noise_rgb()
    disp = np.tile(np.linspace(0.0, 1.0, W, dtype=np.float32), (H, 1))
    right = stereo(rgb, disp, 12.0, mode="left-right")[1]
    sbs = stereo(rgb, disp, 12.0, mode="sbs")
    assert sbs.shape == (H, 2 * W, 3)
    np.testing.assert_array_equal(sbs[:, :W], rgb)
    np.testing.assert_array_equal(sbs[:, W:], right)
    anaglyph = stereo(rgb, disp, 12.0, mode="anaglyph")
    assert anaglyph.shape == (H, W, 3)
    np.testing.assert_array_equal(anaglyph[..., 0], rgb[..., 0])
    np.testing.assert_array_equal(anaglyph[..., 1:], right[..., 1:])


# --------------------------------------------------------------------------------------------------- point cloud


def test_backproject_fronto_parallel_plane_has_constant_depth_and_pinhole_x() -> None:
    disp = np.full((H, W), 0.5, dtype=np.float32)
    points = backproject(disp, fov_deg=90.0, near=1.0, far=10.0)
    z = 1.0 / 0.55
    assert points.shape == (H, W, 3) and points.dtype == np.float32
    np.testing.assert_allclose(points[..., 2], z, rtol=1e-6)
    # fov 90 deg -> focal = W/2; the rightmost pixel centre sits at (W/2 - 0.5) / (W/2) * z.
    np.testing.assert_allclose(points[:, -1, 0], (W / 2 - 0.5) / (W / 2) * z, rtol=1e-5)
    np.testing.assert_allclose(points[0, :, 1], -(H / 2 - 0.5) / (W / 2) * z, rtol=1e-5)
    np.testing.assert_allclose(points[..., 0] + points[:, ::-1, 0], 0.0, atol=1e-5)


def test_write_ply_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(3)
    disp = rng.random((H, W), dtype=np.float32)
    points = backproject(disp, fov_deg=70.0, near=0.5, far=20.0)
    colors = noise_rgb(seed=4)
    mask = disp > 0.3
    path = tmp_path / "frame.ply"
    count = write_ply(path, points, colors, mask=mask)
    header, vertices = read_ply(path)
    assert count == int(mask.sum()) == len(vertices)
    assert header[:2] == ["ply", "format binary_little_endian 1.0"]
    assert header[-7:-1] == [
        "property float x",
        "property float y",
        "property float z",
        "property uchar red",
        "property uchar green",
        "property uchar blue",
    ]
    np.testing.assert_array_equal(np.stack([vertices[a] for a in "xyz"], axis=1), points[mask])
    np.testing.assert_array_equal(np.stack([vertices[c] for c in "rgb"], axis=1), colors[mask])
    assert PLY_VERTEX.itemsize == 15
    write_ply(path, points, colors)  # overwrite in place, no temp file left behind
    assert read_ply(path)[1].shape == (H * W,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.ply"]


def test_write_ply_to_missing_folder_is_an_output_error(tmp_path) -> None:
    points = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(OutputError, match="does not exist"):
        write_ply(tmp_path / "nope" / "a.ply", points, np.zeros((4, 3), dtype=np.uint8))


def test_pointcloud_preview_is_deterministic_and_near_points_win() -> None:
    points = np.array([[0, 0, 1], [0, 0, 2], [1, 1, 2], [-1, -1, 2]], dtype=np.float32)
    colors = np.array([[255, 0, 0], [0, 0, 255], [0, 255, 0], [0, 255, 0]], dtype=np.uint8)
    image = pointcloud_preview(points, colors, size=64, yaw_deg=0.0, pitch_deg=0.0, point_size=1)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert (image == (255, 0, 0)).all(axis=2).sum() == 1
    assert not (image == (0, 0, 255)).all(axis=2).any()  # hidden behind the red point
    disp = np.random.default_rng(5).random((H, W), dtype=np.float32)
    cloud, rgb = backproject(disp), noise_rgb()
    first = pointcloud_preview(cloud, rgb, size=96)
    np.testing.assert_array_equal(first, pointcloud_preview(cloud, rgb, size=96))
    empty = pointcloud_preview(cloud, rgb, size=32, mask=np.zeros((H, W), dtype=bool))
    assert (empty == (24, 24, 28)).all()


# --------------------------------------------------------------------------------------------------- errors

RGB, DISP = noise_rgb(), np.full((H, W), 0.5, dtype=np.float32)
POINTS, COLORS = np.zeros((H, W, 3), dtype=np.float32), noise_rgb()

BAD_INPUTS = {
    "shape mismatch": (lambda: fog(RGB, DISP[:-1], 0.1), "does not match"),
    "disp 3-D": (lambda: fog(RGB, DISP[..., None], 0.1), "2-D"),
    "disp NaN": (lambda: depth_slice(RGB, np.where(DISP > 0, np.nan, 0).astype(np.float32), 0, 1), "NaN"),
    "disp range": (lambda: matte(DISP + 1.0, 0.5, 0.1), "[0, 1]"),
    "rgb float": (lambda: fog(RGB.astype(np.float32), DISP, 0.1), "uint8"),
    "rgb gray": (lambda: stereo(RGB[..., 0], DISP, 4.0), "[H, W, 3]"),
    "rgb list": (lambda: refocus(RGB.tolist(), DISP, 0.5, 1.0), "numpy array"),
    "density": (lambda: fog(RGB, DISP, -1.0), "density"),
    "near far": (lambda: fog(RGB, DISP, 0.1, near=5.0, far=2.0), "near must be smaller"),
    "near zero": (lambda: fog(RGB, DISP, 0.1, near=0.0), "near"),
    "colour": (lambda: fog(RGB, DISP, 0.1, color=(300, 0, 0)), "color"),
    "slice order": (lambda: depth_slice(RGB, DISP, 0.8, 0.2), "empty"),
    "slice background": (lambda: depth_slice(RGB, DISP, 0.2, 0.8, background="white"), "background"),
    "matte split": (lambda: matte(DISP, 1.5, 0.1), "split"),
    "alpha shape": (lambda: apply_matte(RGB, DISP[:, :-1]), "does not match"),
    "aperture nan": (lambda: refocus(RGB, DISP, 0.5, float("nan")), "aperture"),
    "focus": (lambda: refocus(RGB, DISP, 2.0, 1.0), "focus"),
    "stereo mode": (lambda: stereo(RGB, DISP, 4.0, mode="top-bottom"), "mode"),
    "baseline text": (lambda: stereo(RGB, DISP, "wide"), "baseline_px"),
    "fov zero": (lambda: backproject(DISP, fov_deg=0.0), "fov_deg"),
    "fov 180": (lambda: backproject(DISP, fov_deg=180.0), "fov_deg"),
    "ply colours": (lambda: write_ply("x.ply", POINTS, COLORS[:, :-1]), "does not match"),
    "ply nan": (lambda: write_ply("x.ply", POINTS * np.nan, COLORS), "NaN"),
    "ply mask": (lambda: write_ply("x.ply", POINTS, COLORS, mask=DISP[:-1] > 0), "mask"),
    "preview size": (lambda: pointcloud_preview(POINTS, COLORS, size=0), "size"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_inputs_raise_one_line_input_errors(case: str) -> None:
    call, fragment = BAD_INPUTS[case]
    with pytest.raises(InputError) as caught:
        call()
    message = str(caught.value)
    assert fragment in message and "\n" not in message


# --------------------------------------------------------------------------------------------------- samples


def test_demo_samples_write_small_pngs(tmp_path) -> None:
    paths = demo_samples(tmp_path)
    assert {p.name for p in paths} >= {
        "fx_fog.png",
        "fx_slice.png",
        "fx_matte.png",
        "fx_refocus.png",
        "fx_stereo_sbs.png",
        "fx_anaglyph.png",
        "fx_pointcloud.png",
    }
    for path in paths:
        assert path.stat().st_size <= 150_000
        assert cv2.imread(str(path)) is not None
