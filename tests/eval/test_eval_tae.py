"""Temporal alignment error (Video Depth Anything) on scenes with exactly known geometry."""

from __future__ import annotations

import numpy as np
import pytest

from videodepth.errors import InputError
from videodepth.eval import metrics as m

HEIGHT, WIDTH = 12, 16
K = np.array([[20.0, 0.0, 7.5], [0.0, 20.0, 5.5], [0.0, 0.0, 1.0]])
PLANE_Z = 5.0


def translating_camera(steps: list[tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Camera-to-world poses at the given centres, facing a fronto-parallel plane at world z = PLANE_Z."""
    poses = np.stack([np.eye(4)] * len(steps))
    poses[:, :3, 3] = steps
    depth = np.stack([np.full((HEIGHT, WIDTH), PLANE_Z - z) for _, _, z in steps])
    return poses, depth


def test_pure_translation_with_correct_depth_gives_zero():
    poses, depth = translating_camera([(0.0, 0.0, 0.0), (0.3, -0.1, 0.5), (0.5, 0.0, 1.0)])
    assert m.tae(depth, K, poses) == pytest.approx(0.0, abs=1e-12)


def test_inverted_pose_convention_is_detected_and_convertible():
    poses, depth = translating_camera([(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)])
    world_to_camera = np.linalg.inv(poses)
    # Moving the wrong way: frame 0 at 5 m lands at 6 m instead of 4 m (and back at 3 m instead of 5 m).
    assert m.tae(depth, K, world_to_camera) == pytest.approx((2 / 4 + 2 / 5) / 2 * 100)
    assert m.tae(depth, K, m.poses_w2c_to_c2w(world_to_camera)) == pytest.approx(0.0, abs=1e-12)


def test_static_camera_hand_computed_value():
    depth = np.stack([np.full((HEIGHT, WIDTH), 2.0), np.full((HEIGHT, WIDTH), 4.0)])
    poses = np.stack([np.eye(4)] * 2)
    # forward |4 - 2| / 4 = 0.5, backward |2 - 4| / 2 = 1; mean of both, times 100
    assert m.tae(depth, K, poses) == pytest.approx(75.0)


def test_masks_restrict_the_comparison_to_the_destination_frame():
    depth = np.stack([np.full((HEIGHT, WIDTH), 2.0), np.full((HEIGHT, WIDTH), 2.0)])
    depth[1, :, : WIDTH // 2] = 4.0
    masks = np.zeros(depth.shape, dtype=bool)
    masks[1, :, WIDTH // 2 :] = True  # forward pass compares only where both agree
    masks[0] = True  # backward pass compares the whole frame: half 1.0, half 0.0
    assert m.tae(depth, K, np.stack([np.eye(4)] * 2), masks) == pytest.approx((0.0 + 0.5) / 2 * 100)


def test_nothing_to_compare_counts_as_zero_like_the_reference():
    poses, depth = translating_camera([(0.0, 0.0, 0.0), (100.0, 0.0, 0.0)])  # plane leaves the view
    assert m.tae(depth, K, poses) == 0.0


def test_tae_video_aligns_a_raw_disparity_first():
    poses, depth = translating_camera([(0.0, 0.0, 0.0), (0.2, 0.0, 0.5), (0.4, 0.1, 1.0)])
    disparity = 3.0 / depth + 0.2  # any positive affine disparity is aligned away
    assert m.tae_video(disparity, depth, K, poses, max_depth=10.0) == pytest.approx(0.0, abs=1e-5)
    result = m.evaluate_video(disparity, depth, 10.0, K=np.stack([K] * 3), poses_c2w=poses)
    assert result["tae"] == pytest.approx(0.0, abs=1e-5)


def test_tae_rejects_bad_shapes():
    depth = np.ones((2, HEIGHT, WIDTH))
    with pytest.raises(InputError, match="at least 2 frames"):
        m.tae(depth[:1], K, np.eye(4)[None])
    with pytest.raises(InputError, match=r"poses must have shape \[2, 4, 4\]"):
        m.tae(depth, K, np.eye(4)[None])
    with pytest.raises(InputError, match="intrinsics must have shape"):
        m.tae(depth, np.eye(4), np.stack([np.eye(4)] * 2))
    with pytest.raises(InputError, match="TAE needs both intrinsics and poses"):
        m.evaluate_video(depth, depth, 10.0, K=K)


def test_a_zooming_clip_is_scored_with_its_own_intrinsics_per_frame():
    from videodepth.data.clip import clip_to_sequence
    from videodepth.synth.render import render_clip
    from videodepth.synth.scenes import SceneConfig

    clip = render_clip(SceneConfig("tabletop", camera_motion="zoom"), 7, 8, 48, 64)
    sequence = clip_to_sequence(clip)
    sequence.extra["K_frames"] = clip.K_frames.tolist() + clip.K_frames.tolist()  # longer than held
    K, poses = sequence.tae_camera()
    np.testing.assert_allclose(K, clip.K_frames)
    assert poses is sequence.poses_c2w
    # the renderer's own depth is nearly consistent under its own cameras
    depth = np.where(sequence.valid, sequence.depth, 0)
    assert m.tae(depth, K, poses, sequence.valid) < 1.0
    sequence.extra.clear()
    assert sequence.tae_camera()[0] is sequence.K
    sequence.rgb = sequence.rgb[:1]
    assert sequence.tae_camera() == (None, None)
