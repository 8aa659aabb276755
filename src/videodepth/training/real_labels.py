"""Training shards from real video, labelled by the footage's own geometry or by stereo.

``videodepth data label`` runs, per clip: decode at most ``frames`` frames at the processing size;
track the camera (``geometry.refine``); when the reconstruction passes every check the prior plays
no part in, run the model (the prior) and fuse the sparse multi-view points with it. A clip whose reconstruction fails a video-level
check is skipped, the failed check named in the report. Otherwise its shard stores:

- ``depth`` = 1 / fused disparity (the reconstruction's arbitrary units: the dataset normalises
  disparity per clip), 0 where there is no label;
- ``confidence`` in [0, 1]: the fusion's (how much the sparse points, each weighted by its
  reprojection error and track length, decided the pixel), floored to ``fill_weight`` on the
  densified fill where the prior decided, and 0 on frames that failed a frame-level check, on
  pixels whose motion contradicts the camera's (``moving_mask``) and below ``min_confidence``;
- meta ``label`` "geometry" (or "stereo") and ``label_params`` with the ``source`` and the checks'
  one-line summary.

A stereo folder (``rgb/`` left and ``right/`` images) is labelled by OpenCV's semi-global matcher
with a left-right consistency check (confidence 1 where consistent, 0 elsewhere; depth = 1 /
disparity). Clips are split over the processes of a ``torchrun``/``accelerate launch`` run by
``RANK``/``WORLD_SIZE`` (rank r takes clips[r::world] of the sorted list); a clip whose shard, or
whose "skipped" report row made with the same settings (the ``settings`` column), exists is not
labelled again, so a rerun resumes; a skipped clip is tried again once the settings change (a
looser ``--min-rank-agreement``, more ``--frames``).
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from videodepth.data.clip import Clip
from videodepth.data.shards import SHARD_SUFFIX, write_shard
from videodepth.errors import InputError, OutputError
from videodepth.geometry.checks import CheckThresholds, GeometryChecks, check_track
from videodepth.geometry.refine import GeometryOptions, fuse_in_memory, track_in_memory
from videodepth.geometry.shots import find_shots
from videodepth.geometry.tracking import Track
from videodepth.io.tables import append_csv_row
from videodepth.io.video import VideoReader, list_images

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
REPORT_NAME = "label_report.csv"
REPORT_COLUMNS = ("clip", "kind", "status", "reason", "frames", "registered", "points_per_frame",
                  "reprojection_px", "triangulation_deg", "rank_agreement", "relief", "homography_share",
                  "labelled", "seconds", "settings")  # fmt: skip


def label_geometry_options(min_rank_agreement: float = 0.0) -> GeometryOptions:
    """The geometry settings of labelling: a run's, with reprojection error at most 1.0 px.

    ``min_rank_agreement`` -1 turns the rank check off: a weak prior contradicts good
    reconstructions too (session 15: a camera looking down at a person holding a pillow, where
    the floor at the bottom of the frame is the farthest thing and the shipped model puts it nearest).
    """
    thresholds = CheckThresholds(max_reprojection_px=1.0, min_rank_agreement=float(min_rank_agreement))
    return GeometryOptions(thresholds=thresholds)


@dataclass(frozen=True)
class LabelOptions:
    max_res: int = 448  # processing size: the longer side, sides multiples of 64
    frames: int = 120  # at most this many frames per clip (the first ones)
    min_confidence: float = 0.0  # pixels below it get no label
    fill_weight: float = 0.2  # confidence floor of the densified fill on frames the geometry checked
    # stricter than a run's refinement: a wrong label teaches the wrong depth, a skipped clip costs
    # nothing (on rendered clips, reconstructions at 1-1.5 px held wrong focal lengths)
    geometry: GeometryOptions = field(default_factory=label_geometry_options)
    moving_gap: int = 3  # frames between the images whose motion is compared with the camera's
    moving_px: float = 2.0  # epipolar distance (pixels at a 448-pixel side) beyond which a pixel moves
    min_stereo_share: float = 0.05  # a stereo frame with fewer consistent pixels gets no label
    # a label whose disparity varies less than this (95th over 5th percentile of the labelled
    # pixels) says nothing about relative depth: training's per-clip normalisation would stretch
    # its noise to the full range (a distant facade under sky fused to a near-constant)
    min_disparity_ratio: float = 1.25

    def __post_init__(self) -> None:
        if self.max_res < 64 or self.frames < 1:
            raise InputError(f"max_res must be >= 64 and frames >= 1, got {self.max_res} and {self.frames}")
        for name in ("min_confidence", "fill_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    def fingerprint(self, model: str = "") -> str:
        """Short hash of every setting and the prior's model: a report row made otherwise does not
        count as done (the rank check and the label itself depend on the model). The dataclasses'
        repr lists every field, nested ones included, in a fixed order."""
        return hashlib.sha1(f"{self!r} model={model}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ClipSource:
    name: str
    path: Path
    kind: str  # "video" (a file or a folder of images) or "stereo" (rgb/ and right/)


@dataclass
class Row:
    clip: str
    kind: str
    status: str  # labelled, skipped or failed
    reason: str = ""
    frames: int = 0
    registered: float = math.nan
    points_per_frame: float = math.nan
    reprojection_px: float = math.nan
    triangulation_deg: float = math.nan
    rank_agreement: float = math.nan  # median per-frame Spearman of the prior against the points
    relief: float = math.nan  # median per-frame depth ratio of the points (90th over 10th percentile)
    homography_share: float = math.nan  # share of the picture's motion one homography explains
    labelled: float = 0.0  # share of the clip's pixels with a label
    seconds: float = 0.0
    settings: str = ""  # fingerprint of the LabelOptions that decided this row

    def as_csv(self) -> dict[str, str]:
        out = {}
        for column in REPORT_COLUMNS:
            value = getattr(self, column)
            if isinstance(value, float):
                value = "" if not math.isfinite(value) else f"{value:.4g}"
            out[column] = str(value)
        return out


# ----------------------------------------------------------------------------- clips


def _is_stereo(folder: Path) -> bool:
    return (folder / "rgb").is_dir() and (folder / "right").is_dir()


def _clip_of(path: Path) -> ClipSource | None:
    """The clip ``path`` is, or None when it is a folder of clips (or nothing labelable)."""
    if path.is_file():
        return ClipSource(path.stem, path, "video") if path.suffix.lower() in VIDEO_SUFFIXES else None
    if _is_stereo(path):
        return ClipSource(path.name, path, "stereo")
    if list_images(path):
        return ClipSource(path.name, path, "video")
    if (path / "rgb").is_dir() and list_images(path / "rgb"):  # an RGB-D layout: its colour frames
        return ClipSource(path.name, path / "rgb", "video")
    return None


def find_clips(inputs: Iterable[str | Path], exclude: Iterable[str] = ()) -> list[ClipSource]:
    """Every clip under ``inputs`` (video files, image folders, stereo folders, or folders holding
    any of these), sorted by name, without the ``exclude``d names."""
    found: dict[str, ClipSource] = {}

    def add(path: Path, depth: int) -> None:
        clip = _clip_of(path)
        if clip is not None:
            if clip.name in found and found[clip.name].path != clip.path:
                raise InputError(f"two clips are named {clip.name}: {found[clip.name].path} and {clip.path}")
            found[clip.name] = clip
        elif path.is_dir() and depth < 3:
            for child in sorted(path.iterdir()):
                if not child.name.startswith(".") and (
                    child.is_dir() or child.suffix.lower() in VIDEO_SUFFIXES
                ):
                    add(child, depth + 1)

    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise InputError(f"input not found: {path}")
        if path.is_file() and path.suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(f"{path}: not a video file ({', '.join(VIDEO_SUFFIXES)}) or a folder")
        add(path, 0)
    excluded = set(exclude)
    return [found[name] for name in sorted(found) if name not in excluded]


def rank_and_world(environ: dict[str, str] | None = None) -> tuple[int, int]:
    """``RANK`` and ``WORLD_SIZE`` as torchrun and accelerate set them (0 and 1 when unset)."""
    environ = os.environ if environ is None else environ
    try:
        rank, world = int(environ.get("RANK", "0")), int(environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise InputError(
            f"RANK and WORLD_SIZE must be integers, got {environ.get('RANK')!r} and "
            f"{environ.get('WORLD_SIZE')!r}"
        ) from None
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"RANK must be in [0, WORLD_SIZE), got RANK={rank} WORLD_SIZE={world}")
    return rank, world


def report_path(out: Path, report: Path | None, rank: int, world: int) -> Path:
    """The CSV report of this process: ``<out>/label_report.csv``, one per rank when several."""
    path = Path(report) if report is not None else Path(out) / REPORT_NAME
    return path.with_name(f"{path.stem}.rank{rank}{path.suffix}") if world > 1 else path


def finished_in_reports(path: Path) -> dict[str, set[tuple[str, str]]]:
    """clip -> every (status, settings) its rows in this report and its siblings of other ranks
    hold (so a rerun with another number of processes still resumes; a set, because the files'
    order says nothing about which row is newer)."""
    stem = re.sub(r"\.rank\d+$", "", path.stem)
    statuses: dict[str, set[tuple[str, str]]] = {}
    if not path.parent.is_dir():
        return statuses
    for sibling in sorted(path.parent.glob(f"{stem}*{path.suffix}")):
        if sibling.name != f"{stem}{path.suffix}" and not re.fullmatch(
            rf"{re.escape(stem)}\.rank\d+", sibling.stem
        ):
            continue
        with open(sibling, newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                if row.get("clip"):
                    statuses.setdefault(row["clip"], set()).add(
                        (row.get("status", ""), row.get("settings") or "")
                    )
    return statuses


def shard_path(out: Path, name: str) -> Path:
    return Path(out) / f"{name}{SHARD_SUFFIX}"


# ---------------------------------------------------------------------- moving pixels


def _epipolar_outliers(flow: np.ndarray, back: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(moving, reliable) for one image pair: a pixel is reliable where the flow there and back
    returns within a pixel, and moving where its reliable flow lands farther than ``threshold``
    from its epipolar line. The fundamental matrix is fitted (RANSAC) to the flow itself, so the
    test needs neither the depth nor the reconstruction's cameras."""
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    returned = cv2.remap(
        back, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    reliable = np.linalg.norm(flow + returned, axis=-1) < 1.0
    nothing = np.zeros((height, width), bool)
    step = max(4, min(height, width) // 32)
    gy, gx = np.mgrid[step // 2 : height : step, step // 2 : width : step]
    chosen = reliable[gy, gx]
    if chosen.sum() < 30:
        return nothing, nothing
    first = np.stack([gx[chosen], gy[chosen]], 1).astype(np.float32)
    second = first + flow[gy[chosen], gx[chosen]]
    F, _ = cv2.findFundamentalMat(first, second, cv2.FM_RANSAC, 0.25 * threshold, 0.999)
    if F is None or F.shape != (3, 3):
        return nothing, nothing
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size, np.float32)], 1).astype(np.float64)
    moved = points.copy()
    moved[:, :2] += flow.reshape(-1, 2)
    lines, back_lines = points @ F.T, moved @ F
    sampson = np.sum(moved * lines, 1) ** 2 / (lines[:, 0] ** 2 + lines[:, 1] ** 2
                                              + back_lines[:, 0] ** 2 + back_lines[:, 1] ** 2 + 1e-12)  # fmt: skip
    moving = (np.sqrt(sampson).reshape(height, width) > threshold) & reliable
    return moving, reliable


def moving_pixels(frames: np.ndarray, gap: int = 3, threshold_px: float = 2.0) -> np.ndarray:
    """bool [T, H, W]: pixels whose motion to the frames ``gap`` before and after contradicts any
    rigid scene seen by a moving camera (dense DIS optical flow off its epipolar lines, Sampson
    distance). A pixel is flagged when every neighbour that gives a reliable verdict flags it;
    a frame where over half would be flagged (the two-view model failed) gets no verdict."""
    count, height, width = frames.shape[:3]
    mask = np.zeros((count, height, width), bool)
    if count < 2:
        return mask
    gap = max(1, min(gap, count - 1))
    threshold = threshold_px * max(height, width) / 448
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flagged = np.zeros_like(mask)  # flagged by some reliable neighbour
    agreed = np.ones_like(mask)  # and by every neighbour that was reliable there
    for t in range(count - gap):
        forward, backward = dis.calc(gray[t], gray[t + gap], None), dis.calc(gray[t + gap], gray[t], None)
        for index, (flow, back) in ((t, (forward, backward)), (t + gap, (backward, forward))):
            moving, reliable = _epipolar_outliers(flow, back, threshold)
            flagged[index] |= moving
            agreed[index] &= moving | ~reliable
    kernel = np.ones((3, 3), np.uint8)
    for t in range(count):
        frame = (flagged[t] & agreed[t]).astype(np.uint8)
        frame = cv2.dilate(cv2.morphologyEx(frame, cv2.MORPH_OPEN, kernel), np.ones((5, 5), np.uint8))
        mask[t] = frame.astype(bool) if frame.mean() <= 0.5 else False
    return mask


# --------------------------------------------------------------------------- labels


def geometry_confidence(
    fusion: np.ndarray, frame_ok: np.ndarray, moving: np.ndarray, options: LabelOptions
) -> np.ndarray:
    """The shard's confidence from the fusion's: floored to ``fill_weight`` on checked frames,
    0 on unchecked frames and moving pixels, 0 below ``min_confidence``."""
    confidence = np.where(frame_ok[:, None, None], np.maximum(fusion, options.fill_weight), 0.0)
    confidence = np.where(moving, 0.0, confidence)
    confidence = np.where(confidence < options.min_confidence, 0.0, confidence)
    return np.clip(confidence, 0.0, 1.0).astype(np.float32)


def depth_from_disparity(disparity: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """1 / disparity where labelled (0 elsewhere), the disparity first clipped to the 0.5-99.5
    percentiles of the labelled pixels, so that a few stray values cannot squeeze the per-clip
    normalisation of training."""
    depth = np.zeros(disparity.shape, np.float32)
    values = disparity[labelled]
    positive = values[values > 0]
    if len(positive) == 0:
        return depth
    low, high = np.percentile(positive, [0.5, 99.5])
    depth[labelled] = 1.0 / np.clip(values, max(low, 1e-12), max(high, 1e-12))
    # to float16's precision (5e-4 relative, far below a label's error): the shard then compresses
    # to about a third (its float32 depth is stored losslessly)
    depth /= float(np.median(depth[labelled]))  # arbitrary units anyway: keep them in float16's range
    return depth.astype(np.float16).astype(np.float32)


def _nominal_K(height: int, width: int) -> np.ndarray:
    return np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], np.float32)


def _geometry_row(row: Row, track: Track, checks: GeometryChecks) -> Row:
    row.registered = float(track.registered.mean()) if track.num_frames else math.nan
    row.points_per_frame = checks.value("points per frame")
    row.reprojection_px = checks.value("reprojection error")
    row.triangulation_deg = checks.value("triangulation angle")
    row.rank_agreement = checks.value("rank agreement")
    row.relief = checks.value("relief")
    row.homography_share = checks.value("one homography")
    return row


def label_geometry(
    source: ClipSource,
    frames: np.ndarray,
    fps: float,
    learned_of: Callable[[np.ndarray], np.ndarray],
    options: LabelOptions,
) -> tuple[Clip | None, Row]:
    """A geometry-labelled clip of ``frames`` (uint8 [T, H, W, 3] at the processing size), or None
    with the reason; ``learned_of`` runs the model (called only when every other check passed).
    Frames with shot cuts are labelled on their longest shot (``label_params["shot_frames"]``)."""
    shots = find_shots(iter(frames), len(frames), options.geometry.cuts)
    shot = max(shots, key=len)  # one camera path: a clip with cuts is labelled on its longest shot
    frames = frames[shot.start : shot.stop]
    row = Row(source.name, "geometry", "skipped", frames=len(frames))
    track, tracking_seconds = track_in_memory(frames, options.geometry)
    # every check but the rank agreement is measured without the prior: a clip that fails one of
    # them is skipped before the model runs (the same check `refine` would name)
    before = check_track(track, np.full(track.num_frames, np.nan), options.geometry.thresholds)
    _geometry_row(row, track, before)
    failed = [check for check in before.checks if not check.passed and check.name != "rank agreement"]
    if before.note or failed:
        row.reason = before.note or failed[0].describe()
        return None, row
    learned = learned_of(frames)
    fused, fusion, result = fuse_in_memory(track, learned, frames, options.geometry)
    result.seconds = {"tracking": tracking_seconds, **result.seconds}
    _geometry_row(row, track, result.checks)
    if not result.used:
        row.reason = result.checks.first_failure or "geometry not used"
        return None, row
    moving = moving_pixels(frames, options.moving_gap, options.moving_px)
    confidence = geometry_confidence(fusion, result.checks.frame_ok, moving, options)
    labelled = confidence > 0
    if not labelled.any():
        row.reason = (
            "no pixel kept a label (every frame failed its checks, or all fell below --min-confidence)"
        )
        return None, row
    low, high = np.percentile(fused[labelled], [5, 95])
    if not high >= options.min_disparity_ratio * max(low, 1e-12):
        row.reason = (
            f"flat label: the fused disparity's 95th percentile is {high / max(low, 1e-12):.2f} times "
            f"its 5th (needs {options.min_disparity_ratio:g}): no depth differences to learn"
        )
        return None, row
    depth = depth_from_disparity(fused, labelled)
    height, width = depth.shape[1:]
    poses = np.where(track.registered[:, None, None], np.nan_to_num(track.c2w), np.eye(4))
    clip = Clip(
        rgb=frames, depth=depth, valid=depth > 0, K=track.K_at((height, width)).astype(np.float32),
        poses_c2w=poses.astype(np.float32), moving_mask=moving, family=source.name, seed=0, fps=fps,
        label="geometry", max_depth=float(depth.max()), camera_motion="tracked",
        label_params={"source": str(source.path), "checks": result.summary(), "fill_weight": options.fill_weight,
                      "min_confidence": options.min_confidence, "frames_labelled": int(labelled.any((1, 2)).sum()),
                      "shot_frames": [shot.start, shot.stop],
                      "distortion": track.distortion},  # K is pinhole; the lens's k1 (OpenCV's)
        confidence=np.where(depth > 0, confidence, 0.0).astype(np.float32),
    )  # fmt: skip
    row.status, row.labelled = "labelled", float((depth > 0).mean())
    return clip, row


def stereo_disparity(
    left: np.ndarray, right: np.ndarray, max_disparity: int | None = None, block: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Disparity (pixels, float32) of a rectified pair (uint8 RGB [H, W, 3]) by OpenCV's
    semi-global matcher, and where it is confident: a valid match whose right-view disparity
    agrees within a pixel (the left-right consistency check, which also removes occlusions)."""
    height, width = left.shape[:2]
    limit = max_disparity or max(16, width // 4)
    count = 16 * math.ceil(limit / 16)
    matcher = cv2.StereoSGBM_create(minDisparity=0, numDisparities=count, blockSize=block,
                                    P1=8 * 3 * block**2, P2=32 * 3 * block**2, disp12MaxDiff=-1,
                                    uniquenessRatio=10, speckleWindowSize=100, speckleRange=2,
                                    mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)  # fmt: skip
    # both views padded by the search range, so that neither matcher loses a border strip as wide
    # as it (the left one on the left, the right one on the right); cropped again below
    left_gray, right_gray = (cv2.copyMakeBorder(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), 0, 0, count, count,
                                                cv2.BORDER_REPLICATE) for x in (left, right))  # fmt: skip
    disparity = matcher.compute(left_gray, right_gray)[:, count:-count].astype(np.float32) / 16.0
    right_matcher = cv2.ximgproc.createRightMatcher(matcher)
    right_disparity = -right_matcher.compute(right_gray, left_gray)[:, count:-count].astype(np.float32) / 16.0
    valid = disparity > 0
    xs = np.arange(width, dtype=np.float32)[None].repeat(height, 0)
    target = np.clip(np.round(xs - disparity).astype(np.int64), 0, width - 1)
    seen_from_right = np.take_along_axis(right_disparity, target, axis=1)
    consistent = valid & (np.abs(disparity - seen_from_right) <= 1.0) & (xs - disparity >= 0)
    return np.where(consistent, disparity, 0.0).astype(np.float32), consistent


def rectification_offset(left: np.ndarray, right: np.ndarray) -> tuple[float, float, int]:
    """(median vertical offset, median horizontal shift, matches) of SIFT features matched between
    the two views: a rectified pair has no vertical offset and shifts features to the left in
    the right view."""
    sift = cv2.SIFT_create(1000)
    found = [sift.detectAndCompute(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), None) for x in (left, right)]
    (points_l, features_l), (points_r, features_r) = found
    if features_l is None or features_r is None or len(points_l) < 2 or len(points_r) < 2:
        return 0.0, 0.0, 0
    pairs = cv2.BFMatcher().knnMatch(features_l, features_r, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.75 * p[1].distance]
    if not good:
        return 0.0, 0.0, 0
    shift = np.array([np.subtract(points_l[g.queryIdx].pt, points_r[g.trainIdx].pt) for g in good])
    return float(np.median(shift[:, 1])), float(np.median(shift[:, 0])), len(good)


def label_stereo(source: ClipSource, options: LabelOptions) -> tuple[Clip | None, Row]:
    row = Row(source.name, "stereo", "skipped")
    left_reader = VideoReader(
        source.path / "rgb", max_res=options.max_res, multiple=64, process_length=options.frames
    )
    right_reader = VideoReader(source.path / "right", max_res=options.max_res, multiple=64,
                               process_length=options.frames)  # fmt: skip
    if left_reader.size != right_reader.size:
        raise InputError(
            f"{source.path}: left {left_reader.info.width}x{left_reader.info.height} and right "
            f"{right_reader.info.width}x{right_reader.info.height} images differ in size"
        )
    rgb, depth, confidence = [], [], []
    for left, right in zip(left_reader, right_reader, strict=False):
        if not rgb:
            vertical, horizontal, matches = rectification_offset(left, right)
            if matches >= 20 and (abs(vertical) > 1.0 or horizontal < 0):
                row.reason = (f"stereo pair not rectified (matched features {vertical:+.1f} px apart vertically, "
                              f"{horizontal:+.1f} px horizontally): rectify it first")  # fmt: skip
                return None, row
        disparity, consistent = stereo_disparity(left, right)
        if consistent.mean() < options.min_stereo_share:
            consistent[:] = False
        rgb.append(left)
        depth.append(np.where(consistent, 1.0 / np.maximum(disparity, 1e-6), 0.0).astype(np.float32))
        confidence.append(consistent.astype(np.float32))
    row.frames = len(rgb)
    if not rgb:
        row.reason = "no stereo pair"
        return None, row
    depth, confidence = np.stack(depth), np.stack(confidence)
    frames_ok = confidence.any((1, 2))
    row.registered = float(frames_ok.mean())
    if not frames_ok.any():
        row.reason = (
            f"stereo matching: no pair has {100 * options.min_stereo_share:.0f}% left-right consistent "
            "pixels (not rectified, or no texture)"
        )
        return None, row
    height, width = depth.shape[1:]
    clip = Clip(
        rgb=np.stack(rgb), depth=depth, valid=depth > 0, K=_nominal_K(height, width),
        poses_c2w=np.repeat(np.eye(4, dtype=np.float32)[None], len(rgb), 0), moving_mask=np.zeros(depth.shape, bool),
        family=source.name, seed=0, fps=left_reader.fps, label="stereo", max_depth=float(depth.max()),
        camera_motion="stereo",
        label_params={"source": str(source.path), "checks": f"stereo: SGBM with a left-right check on "
                      f"{int(frames_ok.sum())}/{len(rgb)} pairs, {100 * (depth > 0).mean():.0f}% of pixels consistent",
                      "intrinsics": "assumed", "poses": "assumed"},
        confidence=confidence,
    )  # fmt: skip
    row.status, row.labelled = "labelled", float((depth > 0).mean())
    return clip, row


# ---------------------------------------------------------------------------- driver


@dataclass
class LabelSummary:
    clips: list[str]  # this rank's share
    rows: list[Row]  # what this run did
    resumed: list[str]  # already done by an earlier run
    report: Path

    def describe(self) -> str:
        counts = Counter(row.status for row in self.rows)
        frames = sum(row.frames for row in self.rows)
        seconds = sum(row.seconds for row in self.rows)
        parts = [f"{counts.get(s, 0)} {s}" for s in ("labelled", "skipped", "failed")]
        per_frame = f", {seconds / frames:.2f} s/frame" if frames else ""
        return (
            f"{len(self.clips)} clips: {', '.join(parts)}, {len(self.resumed)} already done"
            f"{per_frame}; report {self.report}"
        )


def label_clips(
    inputs: Iterable[str | Path],
    out: str | Path,
    options: LabelOptions = LabelOptions(),
    model: str | Path | None = None,
    report: str | Path | None = None,
    exclude: Iterable[str] = (),
    device: str = "auto",
    rank: int | None = None,
    world: int | None = None,
    progress: bool = True,
    pipeline=None,
    say: Callable[[str], None] | None = None,
) -> LabelSummary:
    """Label this process's share of the clips under ``inputs`` into shards in ``out``."""
    out = Path(out)
    if rank is None or world is None:
        rank, world = rank_and_world()
    clips = find_clips(inputs, exclude)
    if not clips:
        raise InputError(
            f"no clips (videos, image folders or stereo folders) in {', '.join(map(str, inputs))}"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {out}: {error.strerror or error}") from None
    mine = clips[rank::world]
    path = report_path(out, Path(report) if report else None, rank, world)
    done = finished_in_reports(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    say = say or (lambda text: tqdm.write(text, file=sys.stderr))
    state: dict = {"pipeline": pipeline}

    def learned_of(frames: np.ndarray) -> np.ndarray:
        if state["pipeline"] is None:
            from videodepth.loading import load_pipeline

            state["pipeline"] = load_pipeline(model, device=device, say=say)
        return state["pipeline"](frames)

    summary = LabelSummary([c.name for c in mine], [], [], path)
    # a pipeline handed in by a caller has no name: its rows match only rows of such pipelines
    settings = options.fingerprint(model=str(model) if model else "built-in" if pipeline is None else "given")
    bar = tqdm(mine, desc=f"labelling (rank {rank}/{world})" if world > 1 else "labelling", unit="clip",
               disable=not progress, dynamic_ncols=True)  # fmt: skip
    for source in bar:
        target = shard_path(out, source.name)
        if target.is_file() or ("skipped", settings) in done.get(source.name, set()):
            summary.resumed.append(source.name)
            continue
        started = time.perf_counter()
        try:
            if source.kind == "stereo":
                clip, row = label_stereo(source, options)
            else:
                reader = VideoReader(
                    source.path, max_res=options.max_res, multiple=64, process_length=options.frames
                )
                frames = np.stack(list(reader))
                clip, row = label_geometry(source, frames, reader.fps, learned_of, options)
                del frames
            if clip is not None:
                write_shard(clip, target)
        except (KeyboardInterrupt, OutputError):
            raise
        except Exception as error:  # one bad clip must not end a long labelling run
            message = str(error).splitlines()[0] if str(error) else ""
            row = Row(source.name, source.kind if source.kind == "stereo" else "geometry", "failed",
                      f"{type(error).__name__}: {message}"[:300])  # fmt: skip
            clip = None
        row.seconds, row.settings = time.perf_counter() - started, settings
        append_csv_row(path, REPORT_COLUMNS, row.as_csv())
        summary.rows.append(row)
        say(
            f"{source.name}: {row.status}"
            + (f" ({row.reason})" if row.reason else "")
            + f", {row.frames} frames, {row.seconds:.1f} s"
        )
        del clip
    bar.close()
    return summary
