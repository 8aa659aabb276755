"""Dense points from optical flow between tracked frames, on a rendered scene with its true cameras."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from tests.geometry import aligned_abs_rel
from videodepth.geometry import GeometryOptions, Track
from videodepth.geometry.flow_points import (
    FlowPointOptions,
    FlowPoints,
    _triangulate,
    flow_points,
    partner_frames,
)
from videodepth.geometry.fusion import Alignment, FusionOptions, fuse_frame
from videodepth.geometry.observations import OBS_DEPTH
from videodepth.geometry.refine import _with_neighbours, fuse_in_memory
from videodepth.synth.render import render_clip
from videodepth.synth.scenes import SceneConfig

SIZE = (128, 224)


@pytest.fixture(scope="module")
def clip():
    return render_clip(
        SceneConfig(family="tabletop", camera_motion="orbit"), 3, num_frames=24, height=SIZE[0], width=SIZE[1]
    )


def true_track(clip, points_per_frame: int = 200, seed: int = 0) -> Track:
    """The clip's true cameras, each frame observing a few points at their true depth."""
    rng = np.random.default_rng(seed)
    height, width = clip.depth.shape[1:]
    observations = []
    for depth in clip.depth:
        v, u = rng.integers(0, height, points_per_frame), rng.integers(0, width, points_per_frame)
        keep = depth[v, u] > 0
        rows = np.zeros((int(keep.sum()), 6), np.float32)
        rows[:, 0], rows[:, 1] = (u[keep] + 0.5) / width, (v[keep] + 0.5) / height
        rows[:, OBS_DEPTH], rows[:, 3], rows[:, 4], rows[:, 5] = depth[v, u][keep], 0.1, 10.0, 5.0
        observations.append(rows)
    return Track((height, width), clip.K.astype(np.float64), clip.poses_c2w.astype(np.float64), observations)


def grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def relative_errors(points: np.ndarray, depth: np.ndarray) -> np.ndarray:
    height, width = depth.shape
    u = np.clip((points[:, 0] * width).astype(int), 0, width - 1)
    v = np.clip((points[:, 1] * height).astype(int), 0, height - 1)
    truth = depth[v, u]
    keep = truth > 0
    return np.abs(points[keep, OBS_DEPTH] - truth[keep]) / truth[keep]


def test_flow_points_recover_a_rendered_scenes_depth(clip):
    track = true_track(clip)
    index = 12
    partners = partner_frames(track, index, FlowPointOptions())
    assert len(partners) == 2 and partners[0] < index < partners[1]
    points = np.concatenate(
        [flow_points(track, index, j, grey(clip.rgb[index]), grey(clip.rgb[j])) for j in partners]
    )
    grid = (SIZE[0] // 6) * (SIZE[1] // 6)
    assert len(points) > 0.5 * grid  # most of the grid, on both sides
    errors = relative_errors(points, clip.depth[index])
    assert np.median(errors) < 0.03 and np.percentile(errors, 90) < 0.15, np.percentile(errors, [50, 90])


def lateral_track(num_frames: int, registered=None) -> Track:
    """A camera sliding sideways one unit a frame past points 10 units away (f = 100 px, 200 px
    wide): the points move 10 px, 5% of the width, a frame."""
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    c2w[:, 0, 3] = np.arange(num_frames)
    if registered is not None:
        c2w[~np.asarray(registered)] = np.nan
    K = np.array([[100.0, 0, 100], [0, 100.0, 50], [0, 0, 1]])
    rows = np.array([[0.5, 0.5, 10.0, 0.1, 10.0, 5.0], [0.3, 0.6, 10.0, 0.1, 10.0, 5.0]], np.float32)
    return Track((100, 200), K, c2w, [rows] * num_frames)


def test_the_partner_on_each_side_is_the_nearest_frame_with_enough_motion():
    track = lateral_track(20)
    assert partner_frames(track, 10, FlowPointOptions(target_motion=0.05)) == [9, 11]
    assert partner_frames(track, 10, FlowPointOptions(target_motion=0.14)) == [7, 13]
    assert partner_frames(track, 0, FlowPointOptions(target_motion=0.14)) == [3]  # the video's start
    # never farther than max_gap, and never an unregistered frame
    assert partner_frames(track, 10, FlowPointOptions(target_motion=0.5, max_gap=4)) == [6, 14]
    registered = np.ones(20, bool)
    registered[[11, 12]] = False
    assert partner_frames(lateral_track(20, registered), 10, FlowPointOptions(target_motion=0.05)) == [9, 13]
    assert partner_frames(lateral_track(20, registered), 11, FlowPointOptions()) == []


def test_flow_against_the_cameras_motion_gives_no_points():
    """The camera moves down; a picture moving up is the scene at one depth, f b / 4 px; one moving
    sideways (off the epipolar lines) or down (behind the cameras) is not."""
    texture = cv2.GaussianBlur(
        np.random.default_rng(0).integers(0, 256, (100, 200)).astype(np.uint8), (0, 0), 1.5
    )
    c2w = np.tile(np.eye(4), (2, 1, 1))
    c2w[1, 1, 3] = 0.2  # OpenCV's y points down
    track = Track(
        (100, 200), np.array([[100.0, 0, 100], [0, 100.0, 50], [0, 0, 1]]), c2w, [np.zeros((0, 6))] * 2
    )

    def points(dy: int, dx: int) -> np.ndarray:
        moved = np.roll(texture, (dy, dx), axis=(0, 1))
        return flow_points(track, 0, 1, texture, moved, FlowPointOptions(grid_step_px=4))

    up = points(-4, 0)
    # the points are the grid's pixel centres, in the frame's normalised coordinates
    np.testing.assert_allclose((up[:, 0] * 200) % 4, 2.5, atol=1e-3)
    np.testing.assert_allclose((up[:, 1] * 100) % 4, 2.5, atol=1e-3)
    inner = (up[:, 1] > 0.1) & (up[:, 1] < 0.85)  # away from the rolled-over rows
    assert inner.sum() > 500
    assert np.allclose(up[inner, OBS_DEPTH], 100 * 0.2 / 4, rtol=0.05)
    assert len(points(0, 4)) < 0.02 * len(up)
    assert len(points(4, 0)) < 0.02 * len(up)


def test_frames_are_read_ahead_within_a_bounded_window():
    frames = [np.full((8, 10, 3), i, np.uint8) for i in range(9)]
    seen = []
    for index, rgb, greys in _with_neighbours(iter(frames), (4, 5), reach=2):
        assert rgb is frames[index] and len(greys) <= 5
        assert set(greys) == set(range(max(0, index - 2), min(9, index + 3)))
        assert greys[index].shape == (4, 5) and greys[index][0, 0] == index
        seen.append(index)
    assert seen == list(range(9))
    assert [i for i, _, g in _with_neighbours(iter(frames), (4, 5), reach=0) if not g] == seen


def test_flow_points_make_a_sparsely_tracked_scene_dense():
    """With 30 tracked points a frame, the fused depth of a near-bottom/far-top layout is nearer
    the truth once every followed pixel is a point too (a room, the camera circling in it)."""
    room = render_clip(
        SceneConfig(family="indoor", camera_motion="orbit"), 1, num_frames=24, height=SIZE[0], width=SIZE[1]
    )
    track = true_track(room, points_per_frame=30)
    rows = np.linspace(0, 1, SIZE[0], dtype=np.float32)[None, :, None]
    layout = np.broadcast_to(rows, room.depth.shape).copy()

    def fused_abs_rel(enabled: bool) -> float:
        options = GeometryOptions(flow_points=dataclasses.replace(FlowPointOptions(), enabled=enabled))
        fused, _, result = fuse_in_memory(track, layout, room.rgb, options)
        assert result.frames_used == room.num_frames
        return aligned_abs_rel(fused, room.depth)

    without, with_flow = fused_abs_rel(False), fused_abs_rel(True)
    assert with_flow < 0.9 * without, (without, with_flow)


def test_a_frame_borrows_its_neighbours_flow_points_and_forgets_them_when_done(clip):
    track = true_track(clip)
    greys = {i: grey(frame) for i, frame in enumerate(clip.rgb)}
    options = FlowPointOptions(borrow_radius=2)
    dense = FlowPoints(track, options)
    alone = FlowPoints(track, dataclasses.replace(options, borrow_radius=0))
    for index in range(clip.num_frames):
        near, own = dense.for_frame(index, greys), alone.for_frame(index, greys)
        assert len(dense._own) <= 2 * options.borrow_radius + 1  # only the frames still borrowed from
        assert len(near) > 2 * len(own)
        # what is borrowed lands where the scene is, as the frame's own points do
        assert np.median(relative_errors(near, clip.depth[index])) < 0.035
    assert dense.reach == options.max_gap + options.borrow_radius


def test_an_unregistered_frame_has_no_flow_points(clip):
    track = true_track(clip)
    track.c2w[5] = np.nan
    greys = {i: grey(frame) for i, frame in enumerate(clip.rgb)}
    assert len(FlowPoints(track).for_frame(5, greys)) == 0
    assert len(FlowPoints(track).for_frame(6, greys)) > 0


@pytest.mark.parametrize(
    "change", [{"grid_step_px": 0}, {"max_gap": 0}, {"borrow_radius": -1}, {"target_motion": 0.0}]
)
def test_flow_point_options_are_checked(change):
    with pytest.raises(ValueError):
        FlowPointOptions(**change)


def test_rays_that_meet_behind_the_partner_camera_give_no_depth():
    """A point 5 in front of camera a and 5 behind camera b (10 ahead of a, looking the same way):
    the two rays' lines meet there, but b cannot see it."""
    K = np.array([[100.0, 0, 100], [0, 100.0, 50], [0, 0, 1]])
    c2w = np.tile(np.eye(4), (3, 1, 1))
    c2w[1, 2, 3] = 10.0  # ahead of a
    c2w[2, 0, 3] = 1.0  # beside a
    track = Track((100, 200), K, c2w, [np.zeros((0, 6))] * 3)
    point = np.array([[1.0, 0.0, 5.0]])

    def seen_by(index: int) -> np.ndarray:
        in_camera = point - c2w[index, :3, 3]
        return K[:2, :2] @ (in_camera[:, :2] / in_camera[:, 2:]).T + K[:2, 2:3]

    depth, error, _ = _triangulate(track, 0, 2, seen_by(0).T, seen_by(2).T)
    assert depth[0] == pytest.approx(5.0) and error[0] < 1e-6
    depth, _, _ = _triangulate(track, 0, 1, seen_by(0).T, seen_by(1).T)
    assert depth[0] <= 0


def test_flow_points_count_only_where_they_agree_with_the_tracked_ones():
    """Tracked points put a grey wall at inverse depth 1. Flow points on a patch of it say 3 (a
    swinging bag whose motion passed the epipolar test): ignored. Flow points saying 1.2 (within
    the tolerance, a log ratio of 0.4) move it."""
    height, width = 64, 96
    rgb = np.full((height, width, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    tracked = np.zeros((200, 6), np.float32)
    tracked[:, :2] = rng.uniform(0.02, 0.98, (200, 2))
    tracked[:, 2:] = (1.0, 0.3, 10.0, 10.0)
    patch = np.zeros((60, 6), np.float32)
    patch[:, :2] = rng.uniform(0.4, 0.6, (60, 2))
    patch[:, 3:] = (0.3, 10.0, 2.0)
    prior = np.ones((height, width), np.float32)
    alignment = Alignment(1.0, 0.0, (0.0, 10.0))

    def at_patch(inverse_depth: float) -> float:
        patch[:, OBS_DEPTH] = 1.0 / inverse_depth
        fused = fuse_frame(prior, rgb, tracked, alignment, FusionOptions(prior_smoothness=0), checked=patch)
        return float(fused.inverse_depth[height // 2, width // 2])

    assert at_patch(3.0) == pytest.approx(1.0, abs=0.01)
    assert at_patch(1.2) > 1.03
