"""A video of several shots: cuts found, and each shot given the geometry of its own camera.

A cut ends a camera's path: the frames after it share no scene with those before, so one
reconstruction across a cut registers at most one side of it, and the checks then reject the
geometry for the whole video (measured: the elephant clip followed by the roller coaster clip
registered 240 of 500 frames, and neither shot got geometry). Each shot is therefore tracked,
checked, aligned and fused as a video of its own: its own calibration, world, scale and checks.

Cuts are found the way PySceneDetect's adaptive detector finds them (mean hue, saturation and
value difference between consecutive frames, judged against its neighbours' differences, so a
fast pan, whose every frame differs, is not a cut). PySceneDetect itself is not a dependency: it
requires ``opencv-python``, which installs over the ``cv2`` of ``opencv-contrib-python-headless``
that fusion needs (ximgproc).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import cv2
import numpy as np


@dataclass(frozen=True)
class CutOptions:
    compare_side: int = 96  # long side, in pixels, at which consecutive frames are compared
    min_difference: float = 15.0  # mean HSV difference (0-255 scale) a cut needs at least ...
    min_ratio: float = 3.0  # ... and this many times the mean difference of its neighbours
    window: int = 2  # neighbouring frame pairs on each side that a cut is judged against
    min_shot_frames: int = 8  # a cut closer than this to the previous one is a flash, not a shot
    # and the layouts must disagree: the correlation of tiny thumbnails of the value channel stays
    # high through a change of exposure or a subject moving close to the lens
    max_layout_correlation: float = 0.6
    duplicate_difference: float = 0.5  # pairs this alike are repeated frames (frame-rate conversion)

    def __post_init__(self) -> None:
        if self.compare_side < 64 or self.window < 1 or self.min_shot_frames < 2:
            raise ValueError("compare_side must be >= 64, window >= 1 and min_shot_frames >= 2")


def frame_differences(frames: Iterable[np.ndarray], options: CutOptions = CutOptions()) -> np.ndarray:
    """Per frame, against the one before it (row 0 for the first frame): the mean absolute HSV
    difference (hue compared on its circle) and the correlation of 32x18 thumbnails of the value
    channel. A featureless frame (black, white) has no layout, so a frame's layout is compared with
    the last frame that had one: a dip to black between two shots is a cut where the second shot
    begins, a flash within a shot is not. Two floats per frame are kept, so a long video costs
    nothing but its decoding."""
    rows: list[tuple[float, float]] = []
    previous_hsv: np.ndarray | None = None
    layout: np.ndarray | None = None  # the last thumbnail with a layout
    for frame in frames:
        scale = options.compare_side / max(frame.shape[:2])
        small = (
            cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else frame
        )
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV).astype(np.float32)
        thumbnail = cv2.resize(hsv[..., 2], (32, 18), interpolation=cv2.INTER_AREA).ravel()
        featureless = float(thumbnail.std()) < 2.0  # of 255
        if previous_hsv is None:
            rows.append((0.0, 1.0))
        else:
            delta = np.abs(hsv - previous_hsv)
            delta[..., 0] = np.minimum(delta[..., 0], 180.0 - delta[..., 0]) * (255.0 / 90.0)
            correlation = (
                1.0 if featureless or layout is None else float(np.corrcoef(thumbnail, layout)[0, 1])
            )
            rows.append((float(delta.mean()), correlation))
        previous_hsv = hsv
        if not featureless:
            layout = thumbnail
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


def find_cuts(differences: np.ndarray, options: CutOptions = CutOptions()) -> list[int]:
    """Frames that start a new shot, from :func:`frame_differences`. A frame's difference is
    judged against those of the nearest ``window`` distinct frame pairs on each side: repeated
    frames would make any change look sudden."""
    change, layout = differences[:, 0], differences[:, 1]
    distinct = np.flatnonzero(change > options.duplicate_difference)
    cuts: list[int] = []
    last = 0
    for index in range(1, len(change)):
        position = int(np.searchsorted(distinct, index))
        before = distinct[max(0, position - options.window) : position]
        after = distinct[int(np.searchsorted(distinct, index, side="right")) :][: options.window]
        neighbours = change[np.r_[before[before >= 1], after]]
        typical = float(neighbours.mean()) if len(neighbours) else 0.0
        if (
            change[index] >= options.min_difference
            and change[index] >= options.min_ratio * max(typical, 1e-6)
            and layout[index] <= options.max_layout_correlation
            and index - last >= options.min_shot_frames
            and len(change) - index >= options.min_shot_frames
        ):
            cuts.append(index)
            last = index
    return cuts


def shot_ranges(cuts: list[int], num_frames: int) -> list[range]:
    """Consecutive frame ranges covering ``num_frames``, split at ``cuts``."""
    edges = [0, *[c for c in cuts if 0 < c < num_frames], num_frames]
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def find_shots(
    frames: Iterable[np.ndarray], num_frames: int, options: CutOptions = CutOptions()
) -> list[range]:
    return shot_ranges(find_cuts(frame_differences(frames, options), options), num_frames)


def per_shot(
    frames: Iterable[np.ndarray], shots: list[range]
) -> Iterator[tuple[range, Iterator[np.ndarray]]]:
    """One frame stream split into consecutive shots. Frames of a shot left unread are skipped
    before the next shot starts, so the stream is decoded once."""
    stream = iter(frames)
    for shot in shots:
        part = islice(stream, len(shot))
        yield shot, part
        for _ in part:
            pass


def offset(function: Callable, start: int) -> Callable:
    """``function`` with its first argument (a frame index within a shot) made video-wide."""
    return lambda index, *rest: function(start + index, *rest)


def shot_index(shots: list[range], frame: int) -> int:
    """Which of the consecutive ``shots`` holds ``frame``."""
    return bisect.bisect_right([shot.start for shot in shots], frame) - 1
