"""Registering a depth sensor's ground truth to the colour camera, on a rendered two-plane scene."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from videodepth.cli import main
from videodepth.data.clip import Sequence
from videodepth.data.readers import write_rgbd_folder
from videodepth.errors import InputError
from videodepth.eval.registration import (
    DepthToColor,
    fit_depth_to_color,
    parse_registration,
    register_depth,
    register_sequence,
)
from videodepth.eval.runner import registered_ground_truth

H, W = 120, 160
K_DEPTH = np.array([[150.0, 0, 80], [0, 150.0, 60], [0, 0, 1]])
BOX_Z, WALL_Z = 0.5, 3.0  # metres, in the depth camera's frame


BOX = ((-0.08, 0.06), (-0.05, 0.07), BOX_Z)


def render(focal: float, offset=(0.0, 0.0), boxes=(BOX,)) -> np.ndarray:
    """Depth seen by a camera at -offset in the depth camera's frame: boxes ((x0, x1), (y0, y1),
    z) facing it in front of a wall, the nearer box drawn over the farther."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    depth = np.full((H, W), WALL_Z, np.float32)
    for (x0, x1), (y0, y1), z in sorted(boxes, key=lambda box: -box[2]):
        # the point at camera depth z on each pixel's ray, in the depth camera's frame
        x = (u - 80) / focal * z - offset[0]
        y = (v - 60) / focal * z - offset[1]
        depth[(x > x0) & (x < x1) & (y > y0) & (y < y1)] = z
    return depth


def colour_of(depth: np.ndarray) -> np.ndarray:
    """An RGB frame whose only edges are the depth edges: yellow near boxes, dark far ones, a grey wall."""
    rgb = np.full((H, W, 3), 90, np.uint8)
    rgb[depth < 0.7] = (240, 200, 60)
    rgb[(depth >= 0.7) & (depth < WALL_Z)] = (20, 20, 30)
    return rgb


def test_registered_depth_is_what_the_colour_camera_sees():
    truth = DepthToColor(focal=140.0, tx=0.03, ty=-0.01)
    registered = register_depth(render(150.0), K_DEPTH, truth)
    expected = render(140.0, (truth.tx, truth.ty))
    both = registered > 0
    # holes only where the wider colour camera sees past the depth camera's frame (and in the
    # box's thin shadow on the wall, which the depth camera cannot see)
    assert both[12:-12, 12:-12].mean() > 0.97
    assert (registered[both] == expected[both]).mean() > 0.99
    # the raw depth is far off at the box's edges: that is what registration undoes
    assert (render(150.0) != expected).mean() > 0.03


def test_the_nearest_surface_wins_where_two_land_on_one_pixel():
    depth = np.full((H, W), WALL_Z, np.float32)
    depth[:, 80:] = BOX_Z  # a near half: moved left by the offset, over the wall behind it
    registered = register_depth(depth, K_DEPTH, DepthToColor(focal=150.0, tx=-0.02, ty=0.0))
    # the near half moves by f * tx / z = 6 px, the wall by 1 px: columns 74-78 see the near half
    assert np.all(registered[:, 74:79] == BOX_Z)


def test_the_fit_recovers_a_known_registration_from_edges_alone():
    truth = DepthToColor(focal=140.0, tx=0.03, ty=-0.01)
    # boxes near and far, from the centre to the frame's sides: focal length and offset move
    # their edges differently, so the edges decide both
    scenes = [
        [((-0.2, -0.1), (-0.12, 0.1), 0.5), ((0.2, 0.5), (-0.3, 0.2), 1.2)],
        [((0.0, 0.12), (-0.1, 0.02), 0.5), ((-0.6, -0.3), (-0.1, 0.3), 1.5)],
        [((-0.1, 0.03), (0.0, 0.11), 0.6), ((0.3, 0.7), (-0.4, -0.1), 1.8), ((-1.0, -0.6), (0.2, 0.5), 2.2)],
    ]
    depth = np.stack([render(150.0, boxes=boxes) for boxes in scenes])
    rgb = np.stack([colour_of(render(140.0, (truth.tx, truth.ty), boxes)) for boxes in scenes])
    fitted, before, after = fit_depth_to_color(rgb, depth, K_DEPTH)
    assert abs(fitted.tx - truth.tx) <= 0.004 and abs(fitted.ty - truth.ty) <= 0.004
    assert abs(fitted.focal - truth.focal) <= 6
    assert after < 1.0 < before


def test_the_sequence_gets_the_colour_cameras_intrinsics_and_poses():
    angle = 0.3
    c2w = np.eye(4)
    c2w[:3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    c2w[:3, 3] = [1.0, 2.0, 3.0]
    sequence = Sequence(
        "s", np.zeros((2, H, W, 3), np.uint8), np.stack([render(150.0)] * 2), K_DEPTH.astype(np.float32),
        np.stack([c2w] * 2).astype(np.float32), max_depth=10.0, moving_mask=np.ones((2, H, W), bool),
        extra={"K_frames": [K_DEPTH.tolist()] * 2, "source": "kinect"},
    )  # fmt: skip
    t = np.array([0.03, -0.01, 0.0])
    registered = register_sequence(sequence, DepthToColor(focal=140.0, tx=t[0], ty=t[1]))
    assert registered.K[0, 0] == registered.K[1, 1] == 140.0 and registered.K[0, 2] == 80
    # a point at X in the depth frame is at X + t in the colour frame: the colour camera's centre
    # is at -t in the depth camera's frame, so at R (-t) + C in the world; same orientation
    np.testing.assert_allclose(registered.poses_c2w[:, :3, 3], [c2w[:3, :3] @ -t + c2w[:3, 3]] * 2, atol=1e-6)
    np.testing.assert_allclose(registered.poses_c2w[:, :3, :3], [c2w[:3, :3]] * 2, atol=1e-6)
    assert registered.moving_mask is sequence.moving_mask  # drawn on the colour frames: unchanged
    assert registered.extra == {"source": "kinect"}  # the depth camera's per-frame K is dropped
    unchanged, note = registered_ground_truth(sequence, None)
    assert unchanged is sequence and note == "as recorded"
    with pytest.raises(InputError, match="intrinsics"):
        registered_ground_truth(dataclasses.replace(sequence, K=None), "auto")


def test_one_pixel_cracks_are_filled_and_gaps_between_surfaces_are_not():
    wall = np.full((H, W), WALL_Z, np.float32)
    cracked = wall.copy()
    cracked[40, 30] = cracked[50:53, 60] = 0  # a pixel, and a column three pixels high
    filled = register_depth(cracked, K_DEPTH, DepthToColor(focal=150.0, tx=0.0, ty=0.0))
    assert filled[40, 30] == WALL_Z and np.all(filled[50:53, 60] == WALL_Z)  # left/right agree
    # a near block in front of the wall, moved left: the gap it leaves on its right (wall the
    # depth camera could not see) must stay empty, and the block must not grow into it
    scene = wall.copy()
    scene[30:90, 40:80] = BOX_Z
    registered = register_depth(scene, K_DEPTH, DepthToColor(focal=150.0, tx=-0.02, ty=0.0))
    row = registered[60]
    near = np.flatnonzero(row == BOX_Z)
    gap = np.flatnonzero(row[:150] == 0)  # (the wall moves 1 px: the last column is empty too)
    assert near.max() == 73 and gap.min() == 74 and gap.size == 5  # f * tx * (1/0.5 - 1/3) = 5 px
    assert not np.any(registered[:, 74:79] == BOX_Z)


def test_edges_that_decide_nothing_keep_the_ground_truth_as_recorded():
    flat = np.stack([np.full((H, W), WALL_Z, np.float32)] * 2)
    rgb = np.stack([colour_of(render(140.0, (0.03, -0.01)))] * 2)  # colour edges, but no depth edges
    registration, before, after = fit_depth_to_color(rgb, flat, K_DEPTH)
    assert registration is None and before == after
    sequence = Sequence("s", rgb, flat, K_DEPTH.astype(np.float32), None, max_depth=10.0)
    kept, note = registered_ground_truth(sequence, "auto")
    assert kept is sequence and note.startswith("as recorded: no registration")


def test_registrations_parse():
    assert parse_registration("AUTO") == "auto"
    assert parse_registration("551,-0.024,-0.008") == DepthToColor(551.0, -0.024, -0.008)


@pytest.mark.parametrize(
    "text, message",
    [
        ("abc", "expected 'auto'"),
        ("500,0.1", "expected 'auto'"),
        ("-5,0,0", "positive"),
        ("500,2,0", "under 1 m"),
    ],
)
def test_bad_registrations_are_one_clear_line(text, message):
    with pytest.raises(InputError, match=message):
        parse_registration(text)


def test_eval_refuses_a_sequence_without_intrinsics_before_loading_a_model(tmp_path, capsys):
    sequence = Sequence(
        "s", np.zeros((2, H, W, 3), np.uint8), np.stack([render(150.0)] * 2), None, None, max_depth=10.0
    )
    write_rgbd_folder(sequence, tmp_path / "data" / "s")
    code = main(
        ["eval", str(tmp_path / "data"), "--register-depth", "auto", "--model", str(tmp_path / "none")]
    )
    assert code != 0
    assert "needs the depth camera's intrinsics" in capsys.readouterr().err
