"""Dense points from optical flow between tracked frames: every followed pixel, triangulated.

The tracked points are where SIFT found corners, about a thousand a frame, and few or none on a
chair's slats, a plain cabinet door or a wall with soft texture; there fusion has only the
learned prior to go on. Once the cameras are known, a pixel followed by optical flow into
another registered frame is a point as well: its ray in each frame is known, and the two rays
meet at its depth (multi-view stereo's idea, with the flow as the matcher). DIS flow (OpenCV) is
computed on a grid, checked forwards and backwards, and a pixel whose two rays miss each other
by more than ``max_error_px`` (flow off the epipolar line: a moving object, a mismatch) is
dropped. The rows have the tracked points' layout, with a track length of 2, so fusion weighs
them like any pair-seen point; and, being seen from two views only (an object moving along the
epipolar lines passes the test at a wrong depth), fusion lets them count only where they agree
with what the tracked points alone give (``fuse_frame``'s ``checked``).

The partner frame on each side is the nearest whose tracked points move ``target_motion`` of
the frame's width: enough parallax to triangulate, little enough for the flow to follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from videodepth.geometry.observations import OBS_COLUMNS
from videodepth.geometry.tracking import (
    BORROWED_WEIGHT,
    Track,
    camera_rays,
    moved_into,
    nearest_plausible_depth,
    project,
    to_camera,
    to_world,
)


@dataclass(frozen=True)
class FlowPointOptions:
    enabled: bool = True
    grid_step_px: int = 6  # one point every n tracking pixels in each direction
    # the partner frame's tracked points move at least this share of the width (nearest such
    # frame each side, at most ``max_gap`` frames away). Session 19, 7-Scenes over its saved
    # prediction and track: 0.0990 / 0.9000 at 0.03, 0.0984 / 0.9013 at 0.05, 0.0993 / 0.8996 at
    # 0.08 (0.1005 / 0.8961 without flow points); 8 noise-free renders 0.2114-0.2116 at all three
    # (0.2190 without).
    target_motion: float = 0.05
    max_gap: int = 12
    max_round_trip_px: float = 1.0  # forwards then backwards flow must come back this close
    max_error_px: float = 1.0  # the triangulated point must reproject this close in both frames
    min_angle_deg: float = 0.5  # rays nearer parallel than this give no depth worth keeping
    # a frame also takes the flow points of the frames this near, moved into its camera (at half
    # weight, as borrowed tracked points): one pair's points are noisy from frame to frame, and
    # the same surface from the neighbours' pairs averages that out. Session 19, 7-Scenes'
    # saved prediction and track: TAE 1.055 / 0.946 / 0.796 / 0.771 at 0 / 1 / 2 / 3 frames
    # (0.976 without flow points), AbsRel 0.0985 / 0.0964 / 0.0964 / 0.0966.
    borrow_radius: int = 2

    def __post_init__(self) -> None:
        if self.grid_step_px < 1 or self.max_gap < 1 or self.borrow_radius < 0:
            raise ValueError("grid_step_px and max_gap must be at least 1, borrow_radius at least 0")
        if not 0 < self.target_motion < 1:
            raise ValueError("target_motion is a share of the width, in (0, 1)")
        if min(self.max_round_trip_px, self.max_error_px) <= 0 or self.min_angle_deg < 0:
            raise ValueError(
                "max_round_trip_px and max_error_px must be positive, min_angle_deg not negative"
            )


class FlowPoints:
    """Each frame's flow points with its neighbours' moved into its camera, frame after frame.

    Every frame's own points are computed once, from the grey frames handed in, and forgotten
    once no later frame borrows them; ``greys`` must hold the frames within ``max_gap +
    borrow_radius`` of the frame asked for."""

    def __init__(self, track: Track, options: FlowPointOptions = FlowPointOptions()) -> None:
        self.track, self.options = track, options
        self._own: dict[int, np.ndarray] = {}

    @property
    def reach(self) -> int:
        """How far from the frame asked for the grey frames must reach."""
        return self.options.max_gap + self.options.borrow_radius

    def for_frame(self, index: int, greys: dict[int, np.ndarray]) -> np.ndarray:
        """Frame ``index``'s own flow points and its neighbours', in its camera."""
        track, radius = self.track, self.options.borrow_radius
        rows = [np.zeros((0, OBS_COLUMNS), np.float32)]
        if track.registered[index]:
            nearest = nearest_plausible_depth(track, index)
            for source in range(max(0, index - radius), min(track.num_frames, index + radius + 1)):
                if not track.registered[source]:
                    continue
                own = self._points_of(source, greys)
                rows.append(
                    own
                    if source == index
                    else moved_into(track, index, source, own, BORROWED_WEIGHT, nearest)
                )
        for done in [k for k in self._own if k < index - radius]:
            del self._own[done]
        return np.concatenate(rows)

    def _points_of(self, index: int, greys: dict[int, np.ndarray]) -> np.ndarray:
        if index not in self._own:
            pairs = [
                flow_points(self.track, index, partner, greys[index], greys[partner], self.options)
                for partner in partner_frames(self.track, index, self.options)
            ]
            self._own[index] = np.concatenate([np.zeros((0, OBS_COLUMNS), np.float32), *pairs])
        return self._own[index]


def partner_frames(track: Track, index: int, options: FlowPointOptions) -> list[int]:
    """Frames to follow frame ``index``'s pixels into: on each side, the nearest registered frame
    where its tracked points have moved ``target_motion`` of the width (or the farthest registered
    one within ``max_gap`` frames, when none has)."""
    own = track.observations[index]
    if not track.registered[index] or len(own) == 0:
        return []
    height, width = track.size
    world = to_world(track, index, own)
    seen = own[:, :2] * np.array([width, height])
    partners = []
    for direction in (-1, 1):
        chosen = None
        for gap in range(1, options.max_gap + 1):
            other = index + direction * gap
            if not 0 <= other < track.num_frames:
                break
            if not track.registered[other]:
                continue
            chosen = other
            motion = np.linalg.norm(
                project(track.K, track.distortion, to_camera(track, other, world)) - seen, axis=1
            )
            motion = motion[np.isfinite(motion)]  # NaN: past a barrel lens's fold
            if len(motion) and np.median(motion) >= options.target_motion * width:
                break
        if chosen is not None:
            partners.append(chosen)
    return partners


def flow_points(
    track: Track,
    index: int,
    partner: int,
    gray: np.ndarray,
    partner_gray: np.ndarray,
    options: FlowPointOptions = FlowPointOptions(),
) -> np.ndarray:
    """Observation rows [N, 6] of frame ``index`` from the flow of its grid pixels into frame
    ``partner``; ``gray`` and ``partner_gray`` are the two frames at the tracking size (uint8)."""
    height, width = track.size
    if gray.shape != (height, width) or partner_gray.shape != (height, width):
        raise ValueError(f"frames must be grey at the tracking size {track.size}, got {gray.shape}")
    flow_engine = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    forwards = flow_engine.calc(gray, partner_gray, None)
    backwards = flow_engine.calc(partner_gray, gray, None)
    step = options.grid_step_px
    rows, cols = np.mgrid[step // 2 : height : step, step // 2 : width : step]
    rows, cols = rows.ravel(), cols.ravel()
    here = np.stack([cols, rows], axis=1) + 0.5  # COLMAP's continuous pixel coordinates
    there = here + forwards[rows, cols]
    inside = (there[:, 0] > 0) & (there[:, 0] < width) & (there[:, 1] > 0) & (there[:, 1] < height)
    landed = np.clip(there.astype(np.int64), 0, [width - 1, height - 1])
    back = there + backwards[landed[:, 1], landed[:, 0]]
    keep = inside & (np.linalg.norm(back - here, axis=1) < options.max_round_trip_px)
    here, there = here[keep], there[keep]
    depth, error, angle = _triangulate(track, index, partner, here, there)
    good = (depth > 0) & (error < options.max_error_px) & (angle >= options.min_angle_deg)
    observations = np.zeros((int(good.sum()), OBS_COLUMNS), np.float32)
    observations[:, 0] = here[good, 0] / width
    observations[:, 1] = here[good, 1] / height
    observations[:, 2], observations[:, 3], observations[:, 4] = depth[good], error[good], angle[good]
    observations[:, 5] = 2.0  # seen in two frames
    return observations


def _triangulate(
    track: Track, index: int, partner: int, here: np.ndarray, there: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth in frame ``index``, worse of the two reprojection errors (px) and the rays' angle
    (degrees) of pixel pairs [N, 2], by the midpoint of the two rays' closest approach."""
    rotation_a, centre_a = track.c2w[index, :3, :3], track.c2w[index, :3, 3]
    rotation_b, centre_b = track.c2w[partner, :3, :3], track.c2w[partner, :3, 3]
    ray_a = camera_rays(track.K, track.distortion, here) @ rotation_a.T
    ray_b = camera_rays(track.K, track.distortion, there) @ rotation_b.T
    # closest approach: centre_a + s ray_a and centre_b + t ray_b, solved for s and t
    offset = centre_a - centre_b
    aa, ab, bb = (ray_a * ray_a).sum(1), (ray_a * ray_b).sum(1), (ray_b * ray_b).sum(1)
    ao, bo = (ray_a * offset).sum(1), (ray_b * offset).sum(1)
    determinant = aa * bb - ab * ab
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (ab * bo - bb * ao) / determinant
        t = (aa * bo - ab * ao) / determinant
        world = 0.5 * (centre_a + s[:, None] * ray_a + centre_b + t[:, None] * ray_b)
        in_a, in_b = to_camera(track, index, world), to_camera(track, partner, world)
        error = np.maximum(
            np.linalg.norm(project(track.K, track.distortion, in_a) - here, axis=1),
            np.linalg.norm(project(track.K, track.distortion, in_b) - there, axis=1),
        )
        cosine = ab / np.sqrt(aa * bb)
    angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    depth = np.where(in_b[:, 2] > 0, in_a[:, 2], -1.0)  # in front of both cameras
    return np.nan_to_num(depth, nan=-1.0), np.nan_to_num(error, nan=np.inf), angle
