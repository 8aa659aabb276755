"""Geometry-aware depth for a whole video: track, check, align once, fuse frame by frame.

The learned disparity of each frame is read through a callable (a disk buffer in ``videodepth
run``, an array in ``videodepth eval``) and the fused frames are handed to a callback, so memory
is bounded by a window of frames (read ahead for the flow points) plus the points, however long
the video.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from videodepth.geometry.checks import (
    CheckThresholds,
    GeometryChecks,
    check_track,
    horizontal_fov_deg,
    rank_agreement,
)
from videodepth.geometry.flow_points import FlowPointOptions, FlowPoints
from videodepth.geometry.fusion import (
    Alignment,
    FusedFrame,
    FusionOptions,
    fit_alignment,
    fuse_frame,
    point_weights,
    sample_at,
)
from videodepth.geometry.observations import OBS_COLUMNS, OBS_DEPTH, frame_counts, pooling_stride
from videodepth.geometry.shots import CutOptions, offset, per_shot
from videodepth.geometry.tracking import Track, TrackingOptions, observations_near, track_frames


@dataclass(frozen=True)
class GeometryOptions:
    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    fusion: FusionOptions = field(default_factory=FusionOptions)
    thresholds: CheckThresholds = field(default_factory=CheckThresholds)
    cuts: CutOptions = field(default_factory=CutOptions)
    neighbour_radius: int = 5  # frames whose points are borrowed, moved into each frame's camera
    flow_points: FlowPointOptions = field(default_factory=FlowPointOptions)
    # False fuses even when a video-level check fails (for inspection: `geometry-report` shows
    # what a rejected reconstruction would have given); frame-level checks still apply.
    enforce_checks: bool = True


@dataclass
class GeometryResult:
    track: Track
    checks: GeometryChecks
    alignment: Alignment | None = None
    frames_used: int = 0
    points_used: int = 0
    points_inaccurate: int = 0
    points_inconsistent: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def used(self) -> bool:
        return self.alignment is not None

    def summary(self) -> str:
        """One line: what tracking found and whether (and where) the geometry was used."""
        track, checks = self.track, self.checks
        num = track.num_frames
        timing = ", ".join(f"{k} {v / max(num, 1):.2f} s/frame" for k, v in self.seconds.items())
        timing = f"; {timing}" if timing else ""
        if not checks.checks:
            return f"geometry: not used ({checks.first_failure}); learned depth kept{timing}"
        measured = (
            f"image motion {_motion_text(checks.value('image motion'))}, registered {track.registered.sum()}/{num}, {checks.value('points per frame'):.0f} points/frame, "
            f"reprojection {checks.value('reprojection error'):.2f} px, "
            f"triangulation {checks.value('triangulation angle'):.1f} deg, relief {checks.formatted('relief')}, "
            f"one homography {checks.formatted('one homography')} (points {_off_plane_text(checks.off_plane)}), "
            f"field of view {horizontal_fov_deg(track):.0f} deg, rank agreement {checks.formatted('rank agreement')}"
        )
        if not self.used:
            return f"geometry: not used ({checks.first_failure}); learned depth kept [{measured}]{timing}"
        if not checks.passed:
            measured += f", checks ignored: {checks.first_failure}"
        # shares of the observations fusion was given (each frame's own and its neighbours')
        total = max(self.points_used + self.points_inaccurate + self.points_inconsistent, 1)
        return (
            f"geometry: used on {self.frames_used}/{num} frames [{measured}; points excluded: "
            f"{100 * self.points_inaccurate / total:.0f}% reprojecting too far off, "
            f"{100 * self.points_inconsistent / total:.0f}% off their neighbours (moving or inconsistent)]{timing}"
        )


def _motion_text(share: float) -> str:
    return f"{100 * share:.2f}%/frame" if np.isfinite(share) else "not measured"


def _off_plane_text(share: float) -> str:
    return f"{100 * share:.0f}% off a plane" if np.isfinite(share) else "off a plane: not measured"


@dataclass
class VideoGeometry:
    """The geometry of a video of one or more shots, each with its own :class:`GeometryResult`
    (its own calibration, world, scale and checks)."""

    shots: list[range]
    results: list[GeometryResult]

    @property
    def used(self) -> bool:
        return any(result.used for result in self.results)

    @property
    def num_frames(self) -> int:
        return sum(len(shot) for shot in self.shots)

    @property
    def frames_used(self) -> int:
        return sum(result.frames_used for result in self.results)

    @property
    def seconds(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for result in self.results:
            for key, value in result.seconds.items():
                total[key] = total.get(key, 0.0) + value
        return total

    def summary(self, max_shots: int = 8) -> str:
        """One line; for several shots, a count of where the geometry was used, then the line of
        each shot (of the first ``max_shots``: a long edit would flood a terminal)."""
        if len(self.shots) == 1:
            return self.results[0].summary()
        used = sum(result.used for result in self.results)
        cuts = ", ".join(str(shot.start) for shot in self.shots[1 : max_shots + 1])
        more = len(self.shots) - 1 - max_shots
        parts = [
            f"shot {k + 1} (frames {shot.start}-{shot.stop - 1}): {result.summary().removeprefix('geometry: ')}"
            for k, (shot, result) in enumerate(zip(self.shots[:max_shots], self.results, strict=False))
        ]
        if len(self.shots) > max_shots:
            parts.append(f"{len(self.shots) - max_shots} more shots")
        return (
            f"geometry: {len(self.shots)} shots (cuts at frames {cuts}{f' and {more} more' if more > 0 else ''}), "
            f"used in {used}, on {self.frames_used}/{self.num_frames} frames; " + "; ".join(parts)
        )


def refine_shots(
    tracks: Iterable[Track],
    shots: list[range],
    learned: Callable[[int], np.ndarray],
    frames: Iterable[np.ndarray],
    emit: Callable[[int, np.ndarray, np.ndarray, np.ndarray], None],
    options: GeometryOptions = GeometryOptions(),
    progress: Callable[[int], None] | None = None,
) -> VideoGeometry:
    """:func:`refine_video` shot by shot, with video-wide frame indices in ``learned`` and
    ``emit``; each shot's output is in its own reconstruction's units. ``tracks`` may be a
    generator: each track is taken when its shot starts and its observations are closed when the
    shot is fused, so a video of many shots holds one shot's observations at a time."""
    results = []
    for track, (shot, shot_frames) in zip(tracks, per_shot(frames, shots), strict=True):
        try:
            results.append(
                refine_video(
                    track,
                    offset(learned, shot.start),
                    shot_frames,
                    offset(emit, shot.start),
                    options,
                    progress,
                )
            )
        finally:
            track.close()
    return VideoGeometry(shots, results)


def align_to_points(
    track: Track, learned: Callable[[int], np.ndarray], options: GeometryOptions
) -> tuple[Alignment, np.ndarray]:
    """One affine map of the learned disparity onto the points' inverse depth for the whole video,
    and the per-frame rank agreement between the two."""
    xs, ys, ws = [], [], []
    rank = np.full(track.num_frames, np.nan)
    stride = pooling_stride(int(frame_counts(track.observations).sum()))
    for index, observations in enumerate(track.observations):
        if len(observations) == 0:
            continue
        at_points = sample_at(learned(index), observations)
        inverse_depth = 1.0 / observations[:, OBS_DEPTH]
        rank[index] = rank_agreement(at_points, inverse_depth)
        xs.append(at_points[::stride])
        ys.append(inverse_depth[::stride])
        ws.append(point_weights(observations[::stride], options.fusion))
    if not xs:
        return Alignment(1.0, 0.0), rank
    return fit_alignment(np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)), rank


def refine_video(
    track: Track,
    learned: Callable[[int], np.ndarray],
    frames: Iterable[np.ndarray],
    emit: Callable[[int, np.ndarray, np.ndarray, np.ndarray], None],
    options: GeometryOptions = GeometryOptions(),
    progress: Callable[[int], None] | None = None,
) -> GeometryResult:
    """Check the track and emit, for every frame in order, (index, rgb, disparity, confidence).

    When the video-level checks fail, the learned disparity is emitted unchanged (confidence 0),
    so the output is exactly what a run without geometry gives. Otherwise every frame is in the
    reconstruction's inverse-depth units; a frame that fails its own checks gets what fusion gives
    a frame without points (the learned disparity smoothed along the frame's edges, mapped by
    the video's alignment, confidence 0)."""
    started = time.perf_counter()
    alignment, rank = align_to_points(track, learned, options)
    checks = check_track(track, rank, options.thresholds)
    result = GeometryResult(track, checks)
    if checks.passed or (not options.enforce_checks and track.registered.any()):
        # a zero slope (the model's depth says nothing about the points') leaves the points alone
        result.alignment = alignment
    dense = FlowPoints(track, options.flow_points)
    reach = dense.reach if result.used and options.flow_points.enabled else 0
    for index, rgb, greys in _with_neighbours(frames, track.size, reach):
        prior = learned(index)
        if not result.used:
            emit(index, rgb, prior, np.zeros_like(prior))
        elif checks.frame_ok[index]:
            observations = observations_near(track, index, options.neighbour_radius)
            flow = dense.for_frame(index, greys) if reach else None
            fused: FusedFrame = fuse_frame(prior, rgb, observations, alignment, options.fusion, flow)
            result.frames_used += 1
            result.points_used += fused.points_used
            result.points_inaccurate += fused.points_inaccurate
            result.points_inconsistent += fused.points_inconsistent
            emit(index, rgb, fused.inverse_depth, fused.confidence)
        else:  # no points: fusion's own prior, so that used and unused frames do not flicker
            kept = fuse_frame(prior, rgb, np.zeros((0, OBS_COLUMNS), np.float32), alignment, options.fusion)
            emit(index, rgb, kept.inverse_depth, kept.confidence)
        if progress:
            progress(1)
    result.seconds["fusion"] = time.perf_counter() - started
    return result


def _with_neighbours(
    frames: Iterable[np.ndarray], size: tuple[int, int], reach: int
) -> Iterator[tuple[int, np.ndarray, dict[int, np.ndarray]]]:
    """Each frame in order, with the grey images at ``size`` (height, width) of the frames
    within ``reach`` of it, read ahead as needed: memory holds 2 ``reach`` + 1 grey frames and
    ``reach`` frames ahead, however long the video. The dict is one and the same, updated after
    each frame: read it before asking for the next."""
    if reach <= 0:
        yield from ((index, rgb, {}) for index, rgb in enumerate(frames))
        return
    height, width = size
    source = enumerate(frames)
    ahead: deque[tuple[int, np.ndarray]] = deque()
    greys: dict[int, np.ndarray] = {}

    def read_one() -> None:
        item = next(source, None)
        if item is not None:
            ahead.append(item)
            small = cv2.resize(item[1], (width, height), interpolation=cv2.INTER_AREA)
            greys[item[0]] = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)

    for _ in range(reach + 1):
        read_one()
    while ahead:
        index, rgb = ahead.popleft()
        yield index, rgb, greys
        read_one()
        greys.pop(index - reach, None)


def track_in_memory(
    frames: np.ndarray, options: GeometryOptions = GeometryOptions(), first_frame: int = 0
) -> tuple[Track, float]:
    """Track RGB frames uint8 [T, H, W, 3] held in memory (resized to the tracking size with their
    aspect kept); returns the track and the seconds it took. ``first_frame`` numbers the frames
    in notes (a shot's first frame in its clip)."""
    scale = min(1.0, options.tracking.max_side / max(frames.shape[1:3]))
    track_size = (round(frames.shape[2] * scale), round(frames.shape[1] * scale))
    started = time.perf_counter()
    tracking = dataclasses.replace(options.tracking, source_size=frames.shape[1:3])
    resized = (cv2.resize(f, track_size, interpolation=cv2.INTER_AREA) for f in frames)
    track = track_frames(resized, len(frames), tracking, first_frame=first_frame)
    return track, time.perf_counter() - started


def fuse_in_memory(
    track: Track, learned: np.ndarray, frames: np.ndarray, options: GeometryOptions = GeometryOptions()
) -> tuple[np.ndarray, np.ndarray, GeometryResult]:
    """Disparity and confidence [T, h, w] from a track and the model's disparity [T, h, w]."""
    height, width = learned.shape[1:]
    guides = (cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames)
    disparity = np.empty_like(learned, dtype=np.float32)
    confidence = np.empty_like(learned, dtype=np.float32)

    def keep(index: int, rgb: np.ndarray, value: np.ndarray, conf: np.ndarray) -> None:
        disparity[index], confidence[index] = value, conf

    return disparity, confidence, refine_video(track, lambda i: learned[i], guides, keep, options)


def refine_in_memory(
    learned: np.ndarray, frames: np.ndarray, options: GeometryOptions = GeometryOptions()
) -> tuple[np.ndarray, np.ndarray, GeometryResult]:
    """Geometry-refined disparity and confidence [T, h, w] for a clip held in memory.

    ``learned`` is the model's disparity [T, h, w] at the processing size; ``frames`` the RGB
    frames uint8 [T, H, W, 3] at any size (tracked with their aspect kept, fused at the
    processing size)."""
    track, tracking_seconds = track_in_memory(frames, options)
    disparity, confidence, result = fuse_in_memory(track, learned, frames, options)
    result.seconds = {"tracking": tracking_seconds, **result.seconds}
    return disparity, confidence, result
