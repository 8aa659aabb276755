"""Renderer: determinism, analytic depth, pose/intrinsics consistency, label degradations."""

from __future__ import annotations

import numpy as np
import pytest

from videodepth.errors import InputError
from videodepth.synth.degrade import realistic_depth, stereo_occlusions
from videodepth.synth.geometry import Primitive
from videodepth.synth.raycast import FrameRenderer, Scene, cloud_density
from videodepth.synth.render import render_clip
from videodepth.synth.scenes import FAMILIES, SceneConfig, build_scene, look_at
from videodepth.synth.textures import plain_texture

H, W = 48, 64
K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])


def _scene(primitives, pose=None, frames=1) -> Scene:
    pose = np.eye(4) if pose is None else pose
    return Scene(primitives, np.repeat(pose[None], frames, 0), np.repeat(K[None], frames, 0),
                 np.tile(np.float32([0, 0, -1]), (frames, 1)), 0.3, np.zeros(3, np.float32),
                 np.zeros(3, np.float32), 80.0)  # fmt: skip


def _static(pose: np.ndarray, frames: int = 1) -> np.ndarray:
    return np.repeat(pose[None], frames, 0)


def test_plane_at_known_distance_has_constant_z_depth():
    # A plane z = 3 facing the camera (local y axis along world -z).
    pose = np.eye(4)
    pose[:3, :3] = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]])
    pose[:3, 3] = [0, 0, 3]
    plane = Primitive("plane", (100, 100), plain_texture((0.5, 0.5, 0.5)), _static(pose))
    _, depth, _ = FrameRenderer(_scene([plane]), H, W).render(0)
    np.testing.assert_allclose(depth, 3.0, rtol=1e-6)


def test_sphere_depth_matches_closed_form():
    centre, radius = np.array([0.2, -0.1, 5.0]), 1.0
    sphere = Primitive("sphere", (radius,), plain_texture((1, 1, 1)), _static(np.eye(4)))
    sphere.poses[:, :3, 3] = centre
    _, depth, _ = FrameRenderer(_scene([sphere]), H, W).render(0)
    v, u = np.mgrid[0:H, 0:W] + 0.5
    d = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    a, b, c = (d * d).sum(-1), (d @ centre), centre @ centre - radius**2
    disc = b * b - a * c
    expected = np.where(disc >= 0, (b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
    hit = np.isfinite(expected)
    assert hit.sum() > 200 and np.array_equal(hit, np.isfinite(depth))
    np.testing.assert_allclose(depth[hit], expected[hit], rtol=1e-5)
    assert depth[hit].min() == pytest.approx(centre[2] - radius, abs=0.02)


def test_box_occludes_plane_behind_it():
    pose = np.eye(4)
    pose[:3, :3] = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]])
    pose[:3, 3] = [0, 0, 6]
    wall = Primitive("plane", (100, 100), plain_texture((0.2, 0.2, 0.2)), _static(pose))
    box_pose = np.eye(4)
    box_pose[:3, 3] = [0, 0, 2.5]
    box = Primitive("box", (0.5, 0.5, 0.5), plain_texture((1, 1, 1)), _static(box_pose))
    _, depth, _ = FrameRenderer(_scene([wall, box]), H, W).render(0)
    assert depth[H // 2, W // 2] == pytest.approx(2.0, abs=1e-5)  # front face at z = 2.5 - 0.5
    assert depth[0, 0] == pytest.approx(6.0, abs=1e-5)


def test_look_at_is_opencv_convention():
    pose = look_at(np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, 5.0]))
    np.testing.assert_allclose(pose[:3, 2], [0, 0, 1], atol=1e-12)  # z forward
    np.testing.assert_allclose(pose[:3, 1], [0, -1, 0], atol=1e-12)  # y down (world y is up)
    assert np.linalg.det(pose[:3, :3]) == pytest.approx(1.0)


def test_render_is_deterministic_and_seed_dependent():
    a = render_clip("tabletop", 5, num_frames=3, height=40, width=64)
    b = render_clip("tabletop", 5, num_frames=3, height=40, width=64)
    c = render_clip("tabletop", 6, num_frames=3, height=40, width=64)
    for field in ("rgb", "depth", "valid", "poses_c2w", "moving_mask", "K"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert not np.array_equal(a.depth, c.depth)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_renders_valid_shapes(family):
    clip = render_clip(family, 11, num_frames=2, height=36, width=64)
    assert clip.rgb.shape == (2, 36, 64, 3) and clip.rgb.dtype == np.uint8
    assert clip.depth.shape == (2, 36, 64) and clip.depth.dtype == np.float32
    assert clip.poses_c2w.shape == (2, 4, 4) and clip.K.shape == (3, 3)
    assert np.array_equal(clip.valid, clip.depth > 0)
    assert np.isfinite(clip.depth).all()
    # "structures" is mostly sky by design (thin frames seen from below); the rest mostly geometry
    assert 0.02 < clip.valid.mean() < 0.95 if family == "structures" else clip.valid.mean() > 0.3


def test_look_up_pitches_the_camera_and_changes_nothing_else():
    level = build_scene(SceneConfig("street", camera_motion="static"), 5, 2, 64, 36)[0]
    same = build_scene(SceneConfig("street", camera_motion="static", look_up=0.0), 5, 2, 64, 36)[0]
    raised = build_scene(SceneConfig("street", camera_motion="static", look_up=1.0), 5, 2, 64, 36)[0]
    assert np.array_equal(level.poses_c2w, same.poses_c2w)
    np.testing.assert_allclose(raised.poses_c2w[:, :3, 3], level.poses_c2w[:, :3, 3])  # same eye
    # OpenCV camera: the optical axis is the third column, world y is up
    pitch = np.degrees(np.arcsin(raised.poses_c2w[0, 1, 2]) - np.arcsin(level.poses_c2w[0, 1, 2]))
    assert 10 - 1e-6 <= pitch <= 50 + 1e-6
    assert len(raised.primitives) == len(level.primitives)
    for a, b in zip(raised.primitives, level.primitives, strict=True):
        assert np.array_equal(a.poses, b.poses) and np.array_equal(a.texture, b.texture)
    with pytest.raises(InputError, match=r"look-up is a probability in \[0, 1\], got 1.5"):
        build_scene(SceneConfig("street", look_up=1.5), 5, 2, 64, 36)


def test_clouds_grow_with_cover_and_stay_above_the_horizon():
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(3, 4000))
    dirs /= np.linalg.norm(dirs, axis=0)
    thin, thick = (cloud_density(tuple(dirs), cover, seed=3) for cover in (0.2, 0.7))
    assert thin.min() >= 0 and thick.max() <= 1
    assert thick.mean() > thin.mean() > 0
    assert not thick[dirs[1] <= 0].any()


def _reproject(depth0, K0, K1, pose0, pose1):
    """Project frame-0 pixels into frame 1; returns (u1, v1, z1) for every frame-0 pixel."""
    h, w = depth0.shape
    v, u = np.mgrid[0:h, 0:w] + 0.5
    cam = np.stack(
        [(u - K0[0, 2]) / K0[0, 0] * depth0, (v - K0[1, 2]) / K0[1, 1] * depth0, depth0, np.ones_like(u)]
    )
    moved = (np.linalg.inv(pose1) @ pose0 @ cam.reshape(4, -1)).reshape(4, h, w)
    return K1[0, 0] * moved[0] / moved[2] + K1[0, 2], K1[1, 1] * moved[1] / moved[2] + K1[1, 2], moved[2]


@pytest.mark.parametrize(
    ("family", "motion"), [("indoor", "orbit"), ("street", "forward"), ("tabletop", "zoom")]
)
def test_reprojection_with_gt_pose_matches_next_frame_depth(family, motion):
    clip = render_clip(SceneConfig(family, camera_motion=motion), 3, num_frames=2, height=96, width=160)
    u1, v1, z1 = _reproject(clip.depth[0].astype(np.float64), clip.K_frames[0], clip.K_frames[1],
                            clip.poses_c2w[0].astype(np.float64), clip.poses_c2w[1].astype(np.float64))  # fmt: skip
    iu, iv = np.floor(u1).astype(int), np.floor(v1).astype(int)
    inside = (iu >= 0) & (iu < 160) & (iv >= 0) & (iv < 96) & clip.valid[0] & ~clip.moving_mask[0]
    iu, iv = np.clip(iu, 0, 159), np.clip(iv, 0, 95)
    target = clip.depth[1][iv, iu]
    ok = inside & clip.valid[1][iv, iu] & ~clip.moving_mask[1][iv, iu]
    assert ok.mean() > 0.3
    rel = np.abs(z1[ok] - target[ok]) / target[ok]
    # nearest-pixel lookup on slanted surfaces and occlusion edges leaves a small tail
    assert np.median(rel) < 0.01 and np.mean(rel < 0.05) > 0.9


def test_moving_mask_marks_only_moving_objects():
    clip = render_clip("people", 2, num_frames=4, height=72, width=128)
    assert clip.moving_mask.any() and clip.moving_mask.mean() < 0.5
    assert clip.valid[clip.moving_mask].all()


def test_stereo_occlusion_on_hand_made_edge():
    disparity = np.zeros((1, 12), np.float32)
    disparity[0, 6:] = 4.0  # a near object starting at x = 6, background at disparity 0
    occluded = stereo_occlusions(disparity, 8)
    # background pixels with a foreground pixel s to their right closer by more than s pixels
    assert occluded[0].tolist() == [False] * 3 + [True] * 3 + [False] * 6


def test_realistic_labels_are_measurably_degraded():
    fine = render_clip("indoor", 4, num_frames=3, height=80, width=128)
    real = realistic_depth(fine, np.random.default_rng(0))
    p = real.label_params
    assert real.label == "realistic" and real.rgb is fine.rgb
    assert real.valid.sum() < fine.valid.sum()  # holes at occlusions, blobs, far cut-off
    assert not (real.valid & ~fine.valid).any()  # never invents depth where there was none
    disparity = p["focal"] * p["baseline"] / real.depth[real.valid]
    steps = disparity * p["subpixel"]
    np.testing.assert_allclose(steps, np.round(steps), atol=2e-3)  # quantised to 1/subpixel px
    rel = np.abs(real.depth[real.valid] - fine.depth[real.valid]) / fine.depth[real.valid]
    assert 0 < np.median(rel) < 0.1  # degraded, but still the same scene


def test_render_clip_realistic_label_and_errors():
    clip = render_clip("street", 1, num_frames=2, height=40, width=64, label="realistic")
    assert clip.label == "realistic" and clip.label_params["subpixel"] in (1, 2, 4, 8)
    with pytest.raises(InputError, match="unknown scene family"):
        render_clip("moon", 1, 2, 40, 64)
    with pytest.raises(InputError, match="label style"):
        render_clip("indoor", 1, 2, 40, 64, label="coarse")
