"""Camera tracking with pycolmap: one shared camera, sequential matching, chunked for long videos.

Frames are written as images at a modest tracking resolution (aspect kept) into a temporary
folder, SIFT features are matched with each frame's next ``overlap`` neighbours, and COLMAP's
incremental mapper recovers cameras and sparse points. A long video is tracked in overlapping
chunks; each chunk is joined to the previous one by the similarity that maps their shared
frames onto each other, so memory is bounded by the chunk and cost grows linearly with length.

The result is a :class:`Track`: per-frame intrinsics and camera-to-world poses (OpenCV
convention) and, per frame, the sparse points it observes as (u, v, depth, error, angle) with u, v
normalised to [0, 1] so they can be used at any resolution.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import logging
import math
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from videodepth.geometry.observations import (
    OBS_DEPTH,
    OBS_ERROR,
    ObservationStore,
    frame_counts,
    read_observations,
    write_observations,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackingOptions:
    """How frames are tracked. Field-of-view guesses are tried in order until one registers
    most frames; ``intrinsics`` (fx, fy, cx, cy in the source video's pixels) skips the guesses."""

    max_side: int = 448
    max_features: int = 2048
    overlap: int = 8
    keyframe_stride: int = 3  # every n-th frame is mapped; the others are registered to it by PnP
    chunk_frames: int = 240
    chunk_overlap: int = 24
    fov_guesses_deg: tuple[float, ...] = (55.0, 90.0, 35.0)
    intrinsics: tuple[float, float, float, float] | None = None
    source_size: tuple[int, int] | None = None  # (height, width) that ``intrinsics`` refer to
    # the lens's radial distortion when known (a long video's first chunk's, for the later ones):
    # held fixed like the focal length; None: estimated
    distortion: float | None = None
    good_registration: float = 0.8
    # observations kept per frame (the best reprojecting): memory grows with the video's length
    # by this many rows per frame, about 24 kB
    max_points_per_frame: int = 1000
    # below this image motion (share of the width per frame) mapping is not even tried: a clearly
    # still camera, where every focal guess would fail slowly (half the checks' threshold)
    still_camera_motion: float = 0.0003
    threads: int = (
        1  # one thread: pycolmap is then deterministic (several threads give other reconstructions)
    )
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_side < 64:
            raise ValueError(f"tracking max_side must be at least 64, got {self.max_side}")
        if self.chunk_frames < 8 or not 2 <= self.chunk_overlap < self.chunk_frames // 2:
            raise ValueError("chunk_frames must be >= 8 and chunk_overlap in [2, chunk_frames / 2)")
        if self.intrinsics is not None and (len(self.intrinsics) != 4 or min(self.intrinsics[:2]) <= 0):
            raise ValueError("intrinsics must be fx,fy,cx,cy with positive focal lengths")


@dataclass
class Track:
    """Cameras and sparse points of a video, as recovered by tracking."""

    size: tuple[int, int]  # (height, width) of the tracking frames; K refers to it
    K: np.ndarray  # [3, 3] shared intrinsics
    c2w: np.ndarray  # [T, 4, 4] camera-to-world, NaN where a frame is not registered
    # per frame: [N, 6] (u, v in [0,1], depth, error px, angle deg, track length); a list, or an
    # ObservationStore on disk for tracked videos, whose length is unbounded
    observations: Sequence[np.ndarray]
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 6), np.float32))  # xyz + rgb (0-255)
    note: str = ""  # why tracking gave nothing, if it did not
    image_motion: float = float("nan")  # median image motion, tracking pixels per frame (0: a still camera)
    # share of the picture's motion (frames 5 apart) that one homography explains, its lower
    # quartile over the video's moving frame pairs: near 1 for a zoom, a camera turning on the spot
    # or a single plane (no parallax); NaN: not measured
    homography_share: float = float("nan")
    # the lens's radial distortion (COLMAP's SIMPLE_RADIAL k, OpenCV's k1): a normalised image
    # point x is seen at x * (1 + k |x|^2); 0 for tracks saved before session 18
    distortion: float = 0.0

    @property
    def num_frames(self) -> int:
        return len(self.observations)

    @property
    def registered(self) -> np.ndarray:
        return np.isfinite(self.c2w[:, 0, 0])

    def K_at(self, size: tuple[int, int]) -> np.ndarray:
        """Intrinsics for frames resized to ``size`` (height, width). COLMAP's principal point is in
        continuous coordinates (pixel corner = 0), so plain scaling is exact."""
        return np.diag([size[1] / self.size[1], size[0] / self.size[0], 1.0]) @ self.K

    def save(self, path: Path) -> None:
        """One ``.npz`` (exactly at ``path``); the observations are written frame by frame."""
        with open(path, "wb") as file:
            np.savez(
                file,
                size=np.array(self.size),
                K=self.K,
                c2w=self.c2w,
                counts=frame_counts(self.observations),
                points=self.points,
                note=np.array(self.note),
                image_motion=np.array(self.image_motion),
                homography_share=np.array(self.homography_share),
                distortion=np.array(self.distortion),
            )
        with zipfile.ZipFile(path, "a") as archive:
            write_observations(archive, "observations.npy", self.observations)

    @classmethod
    def load(cls, path: Path) -> Track:
        with np.load(path) as data:
            meta = {key: data[key] for key in data.files if key != "observations"}
        with zipfile.ZipFile(path) as archive:
            observations = read_observations(archive, "observations.npy", meta["counts"])
        return cls(
            size=tuple(int(s) for s in meta["size"]),
            K=meta["K"],
            c2w=meta["c2w"],
            observations=observations,
            points=meta["points"],
            note=str(meta["note"]),
            image_motion=float(meta["image_motion"]),
            # tracks saved before session 17 did not measure it
            homography_share=float(meta.get("homography_share", np.nan)),
            distortion=float(meta.get("distortion", 0.0)),
        )

    def close(self) -> None:
        """Release the observations' temporary file; the cameras and points stay usable."""
        if isinstance(self.observations, ObservationStore):
            self.observations.close()

    @classmethod
    def empty(cls, num_frames: int, size: tuple[int, int], note: str) -> Track:
        return cls(
            size=size,
            K=np.eye(3),
            c2w=np.full((num_frames, 4, 4), np.nan),
            observations=[np.zeros((0, 6), np.float32) for _ in range(num_frames)],
            note=note,
        )


def focal_from_fov(width: int, height: int, fov_deg: float) -> float:
    """Focal length (pixels) giving a horizontal field of view of ``fov_deg`` degrees; for frames
    wider than 2.2:1 the field of view spans a 16:9 crop of their height, so that a 1408x376
    driving frame is not given a 150-degree lens."""
    reference = min(width, 16 / 9 * height) if width > 2.2 * height else width
    return 0.5 * reference / math.tan(math.radians(fov_deg) / 2)


def track_frames(
    frames: Iterable[np.ndarray],
    num_frames: int,
    options: TrackingOptions = TrackingOptions(),
    progress: Callable[[int], None] | None = None,
    first_frame: int = 0,
) -> Track:
    """Track a stream of RGB frames (uint8 HxWx3, already at the tracking size); notes name frames
    counting from ``first_frame`` (a shot's first frame in its video)."""
    import pycolmap

    pycolmap.logging.minloglevel = 3  # COLMAP's own log is not for our users; failures are reported

    chunks = _chunk_ranges(num_frames, options.chunk_frames, options.chunk_overlap)
    motion = _ImageMotion(step=max(1, min(5, (num_frames - 1) // 2)))
    frames = (motion.add(frame) for frame in frames)
    track: Track | None = None
    size: tuple[int, int] | None = None
    carried: list[np.ndarray] = []  # frames shared with the next chunk
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="videodepth-track-") as scratch:
        for chunk_index, (start, stop) in enumerate(chunks):
            chunk_frames = carried + [next(frames) for _ in range(stop - start - len(carried))]
            size = size or chunk_frames[0].shape[:2]
            carried = chunk_frames[-options.chunk_overlap :] if chunk_index + 1 < len(chunks) else []
            folder = Path(scratch) / f"chunk{chunk_index:05d}"
            motion_so_far = motion.median() / chunk_frames[0].shape[1]
            try:
                if motion_so_far < options.still_camera_motion:  # NaN (not measured) compares False
                    part = Track.empty(
                        len(chunk_frames),
                        size,
                        f"a still camera (image motion "
                        f"{100 * motion_so_far:.2f}% of the width per frame): nothing to triangulate",
                    )
                else:
                    part = _track_chunk(pycolmap, chunk_frames, folder, options)
            except Exception as error:  # a third-party failure must cost the geometry, never the run
                part = Track.empty(
                    len(chunk_frames), size, f"tracking failed ({type(error).__name__}: {error})"
                )
            if progress:
                progress(stop - start - (options.chunk_overlap if chunk_index else 0))
            if part.note:
                notes.append(f"frames {first_frame + start}-{first_frame + stop - 1}: {part.note}")
            if track is None:  # later chunks append to this store: memory stays bounded by a chunk
                track = dataclasses.replace(part, observations=ObservationStore(part.observations))
            else:
                track = _join(track, part, start, options.chunk_overlap)
            if track.registered.any() and options.distortion is None:
                # one camera for the whole video: later chunks keep the first one's calibration,
                # the lens's distortion with it (the points of every chunk are read with it)
                K = track.K
                options = dataclasses.replace(
                    options,
                    intrinsics=(K[0, 0], K[1, 1], K[0, 2], K[1, 2]),
                    source_size=size,
                    distortion=track.distortion,
                )
            del chunk_frames
            _release_memory()
    assert track is not None and size is not None
    if notes and not track.registered.any():
        track.note = "; ".join(notes)
    track.image_motion = motion.median()
    track.homography_share = motion.homography_share()
    return track


def _release_memory() -> None:
    """Hand the memory of a finished chunk back to the system. COLMAP's allocations are freed but
    glibc keeps them in its arenas, so without this the peak grows by about 20 MB per chunk."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class _ImageMotion:
    """Median optical-flow displacement of a grid of points, every ``step`` frames: how much the
    picture as a whole moves. A still camera filming a moving person measures near zero, where a
    reconstruction of that person would claim camera motion.

    It also measures how much of that motion one homography explains (near 1: a zoom, a camera
    turning on the spot, or a single plane), on the sampled pairs whose picture moved
    ``min_parallax_px`` or more. At such small motion a slow dolly over a deep scene shows little
    parallax too; a version that waited for 8 px of motion (comparing with frames up to 20 back)
    no longer told the one zoom we know from the clips the geometry helps (session 17)."""

    def __init__(self, step: int = 5, min_parallax_px: float = 2.0) -> None:
        self.step, self.count, self.min_parallax_px = step, 0, min_parallax_px
        self.previous: np.ndarray | None = None
        self.samples: list[float] = []
        self.homography_shares: list[float] = []

    def add(self, frame: np.ndarray) -> np.ndarray:
        if self.count % self.step == 0:
            gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            if self.previous is not None:
                height, width = gray.shape
                ys, xs = np.mgrid[0.1:0.9:12j, 0.1:0.9:16j]
                grid = (
                    np.stack([xs.ravel() * width, ys.ravel() * height], 1)
                    .astype(np.float32)
                    .reshape(-1, 1, 2)
                )
                moved, ok = _follow(self.previous, gray, grid, max_round_trip_px=1.0)
                if ok.sum() >= 10:
                    shift = float(np.median(np.linalg.norm(moved[ok] - grid.reshape(-1, 2)[ok], axis=1)))
                    self.samples.append(shift / self.step)
                    if shift >= self.min_parallax_px:
                        share = _homography_share(grid.reshape(-1, 2)[ok], moved[ok])
                        if np.isfinite(share):
                            self.homography_shares.append(share)
            self.previous = gray
        self.count += 1
        return frame

    def median(self) -> float:
        return float(np.median(self.samples)) if self.samples else float("nan")

    def homography_share(self) -> float:
        """The lower quartile over the sampled pairs, not the median: a video whose camera turns on
        the spot for a while and moves for the rest (a quarter of its moving pairs or more show
        parallax) has real depth in its reconstruction. With the median, the elephant clip played
        forwards and backwards measured 0.66 over 300 frames and 0.93 over 3,000 (the pans weigh
        more in the longer one), and its geometry was refused (session 18)."""
        if not self.homography_shares:
            return float("nan")
        return float(np.percentile(self.homography_shares, 25))


def _homography_share(source: np.ndarray, target: np.ndarray, tolerance_px: float = 1.0) -> float:
    """Share of point motions that one homography (RANSAC) explains within ``tolerance_px``; NaN
    where no homography can be fitted (OpenCV then returns an all-zero mask, not None)."""
    homography, inliers = cv2.findHomography(source, target, cv2.RANSAC, tolerance_px)
    return float(inliers.mean()) if homography is not None and inliers is not None else float("nan")


def _chunk_ranges(num_frames: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    if num_frames <= chunk:
        return [(0, num_frames)]
    ranges, start = [], 0
    while True:
        stop = min(start + chunk, num_frames)
        if num_frames - stop < overlap:  # a short tail joins this chunk rather than form its own
            stop = num_frames
        ranges.append((start, stop))
        if stop == num_frames:
            return ranges
        start = stop - overlap


def _track_chunk(pycolmap, frames: list[np.ndarray], folder: Path, options: TrackingOptions) -> Track:
    """One pycolmap reconstruction of up to ``chunk_frames`` frames.

    Keyframes (every ``keyframe_stride``-th frame) are extracted, matched and mapped, retried over
    the focal guesses until most of them register. Every other frame is registered to its
    neighbouring keyframes' points by optical flow (OpenCV's pyramidal Lucas-Kanade, checked
    forwards and backwards) and absolute pose, which costs milliseconds where mapping it would
    cost a bundle adjustment."""
    height, width = frames[0].shape[:2]
    if len(frames) < 2:
        return Track.empty(len(frames), (height, width), "one frame: nothing to triangulate")
    pycolmap.set_random_seed(options.seed)  # COLMAP's generator is process-wide: reseed for every chunk
    stride = max(1, min(options.keyframe_stride, (len(frames) - 1) // 2))
    keyframes = sorted(set(range(0, len(frames), stride)) | {len(frames) - 1})
    images = folder / "images"
    images.mkdir(parents=True)
    names = [f"{i:06d}.png" for i in range(len(frames))]
    for k in keyframes:
        cv2.imwrite(str(images / names[k]), cv2.cvtColor(frames[k], cv2.COLOR_RGB2BGR))
    guesses = _intrinsics_guesses(width, height, options)
    database = folder / "features.db"
    try:
        _extract_and_match(pycolmap, images, [names[k] for k in keyframes], database, guesses[0], options)
    except Exception as error:  # pycolmap raises plain RuntimeErrors for unreadable or degenerate input
        return Track.empty(len(frames), (height, width), f"feature matching failed ({error})")
    best = None
    attempts = _mapping_attempts(guesses, options.seed, options.distortion is not None)
    for attempt, (params, seed, refine_distortion) in enumerate(attempts):
        try:
            reconstruction = _map_keyframes(
                pycolmap,
                images,
                database,
                folder / f"sparse{attempt}",
                params,
                options,
                seed,
                refine_distortion,
            )
        except Exception as error:
            logger.info("pycolmap mapping failed: %s", error)
            continue
        if reconstruction is None:
            continue
        if best is None or reconstruction.num_reg_images() > best.num_reg_images():
            best = reconstruction
        if best.num_reg_images() >= options.good_registration * len(keyframes):
            break
    if best is None:
        return Track.empty(len(frames), (height, width), "no reconstruction (too little texture or motion)")
    extra = _register_between_keyframes(pycolmap, best, frames, names)
    return _to_track(best, names, (height, width), extra, options.max_points_per_frame)


def _distortion_of(reconstruction) -> float:
    params = next(iter(reconstruction.cameras.values())).params
    return float(params[3]) if len(params) == 4 else 0.0  # SIMPLE_RADIAL: f, cx, cy, k


def _mapping_attempts(
    guesses: list[list[float]], seed: int, distortion_known: bool = False
) -> list[tuple[list[float], int, bool]]:
    """(camera parameters, random seed, whether the lens's distortion is refined) to map with, in
    order. A known calibration (the user's, or a long video's first chunk's) has one guess, so it
    gets other random starts instead: the incremental mapper can settle on a degenerate first pair
    (a camera turning back on its path) and register a handful of frames with one seed and every
    frame with the next. Its focal length stays fixed; the distortion, which fx,fy,cx,cy do not
    give, is refined first (held at zero, a real lens's distortion bent 7-Scenes' reconstruction
    until the checks refused it) and held at zero only if that fails: refined from the first
    pair of views, it can run away (k = 2 on a small render, two keyframes registered). A known
    distortion (a long video's first chunk's) is held like the focal length."""
    if distortion_known:
        return [(guesses[0], seed + k, False) for k in range(3)]
    if len(guesses) == 1:
        return [(guesses[0], seed + k, refine) for refine in (True, False) for k in range(3)]
    return [(params, seed, True) for params in guesses]


def _intrinsics_guesses(width: int, height: int, options: TrackingOptions) -> list[list[float]]:
    """SIMPLE_RADIAL parameters (f, cx, cy, k) to start from, in tracking pixels."""
    if options.intrinsics is not None:
        fx, fy, px, py = options.intrinsics
        source_h, source_w = options.source_size or (height, width)
        sx, sy = width / source_w, height / source_h
        return [[0.5 * (fx * sx + fy * sy), px * sx, py * sy, options.distortion or 0.0]]
    return [
        [focal_from_fov(width, height, fov), width / 2, height / 2, 0.0] for fov in options.fov_guesses_deg
    ]


def _extract_and_match(
    pycolmap, images: Path, names: list[str], database: Path, params: list[float], options: TrackingOptions
) -> None:
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "SIMPLE_RADIAL"
    reader.camera_params = ",".join(f"{p:.6f}" for p in params)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = max(options.max_side, 64)
    extraction.num_threads = options.threads
    extraction.sift.max_num_features = options.max_features
    pycolmap.extract_features(
        database,
        images,
        image_names=names,
        camera_mode=pycolmap.CameraMode.SINGLE,
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )
    pairing = pycolmap.SequentialPairingOptions()
    pairing.overlap = options.overlap
    pairing.quadratic_overlap = True  # also frames 2, 4, 8, ... apart: wider baselines for little cost
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = options.threads
    pycolmap.match_sequential(
        database, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu
    )


def _map_keyframes(
    pycolmap,
    images: Path,
    database: Path,
    output: Path,
    params: list[float],
    options: TrackingOptions,
    seed: int,
    refine_distortion: bool = True,
):
    """Incremental mapping of the keyframes, the shared camera starting from ``params``."""
    pycolmap.set_random_seed(seed)
    with pycolmap.Database.open(database) as db:
        camera = db.read_all_cameras()[0]
        camera.params = params
        db.update_camera(camera)
    mapper = pycolmap.IncrementalPipelineOptions()
    mapper.num_threads = options.threads
    mapper.random_seed = seed
    mapper.multiple_models = False
    mapper.min_model_size = 3
    mapper.ba_refine_principal_point = False
    # fewer, shorter global adjustments: video keyframes are many and close together
    mapper.ba_global_frames_ratio = 1.5
    mapper.ba_global_points_ratio = 1.5
    mapper.ba_global_max_num_iterations = 15
    mapper.ba_local_max_num_iterations = 10
    if options.intrinsics is not None:  # trusted as given: the user's, or a long video's first chunk's
        mapper.ba_refine_focal_length = False
    mapper.ba_refine_extra_params = refine_distortion
    output.mkdir(parents=True, exist_ok=True)
    models = pycolmap.incremental_mapping(database, images, output, options=mapper)
    if not models:
        return None
    return max(models.values(), key=lambda r: r.num_reg_images())


def _register_between_keyframes(
    pycolmap, reconstruction, frames: list[np.ndarray], names: list[str]
) -> dict[str, tuple[np.ndarray, list]]:
    """Absolute pose of each frame between registered keyframes, from the 3D points of the
    nearest keyframe on each side followed into it by optical flow. Returns
    name -> (w2c 3x4, [(xy, point3D_id), ...])."""
    camera = next(iter(reconstruction.cameras.values()))
    index_of = {name: i for i, name in enumerate(names)}
    mapped = {index_of[image.name]: image for image in reconstruction.images.values() if image.has_pose}
    if not mapped:
        return {}
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    anchors = sorted(mapped)
    result: dict[str, tuple[np.ndarray, list]] = {}
    for index in range(len(frames)):
        if index in mapped:
            continue
        before = [k for k in anchors if k < index][-1:]
        after = [k for k in anchors if k > index][:1]
        xy_list, id_list = [], []
        for k in before + after:
            points = [(p.xy, p.point3D_id) for p in mapped[k].points2D if p.has_point3D()]
            if not points:
                continue
            source = np.array([xy for xy, _ in points], np.float32).reshape(-1, 1, 2)
            moved, ok = _follow(gray[k], gray[index], source)
            xy_list.append(moved[ok])
            id_list.append(np.array([point_id for _, point_id in points])[ok])
        if not xy_list or sum(len(x) for x in xy_list) < 12:
            continue
        xy = np.concatenate(xy_list).astype(np.float64)
        ids = np.concatenate(id_list)
        xyz = np.array([reconstruction.points3D[i].xyz for i in ids])
        estimate = pycolmap.estimate_and_refine_absolute_pose(xy, xyz, camera)
        if estimate is None or estimate["num_inliers"] < 12:
            continue
        inliers = np.asarray(estimate["inlier_mask"], bool)
        result[names[index]] = (
            estimate["cam_from_world"].matrix(),
            list(zip(xy[inliers], ids[inliers].tolist(), strict=True)),
        )
    return result


def _follow(
    source_gray: np.ndarray, target_gray: np.ndarray, points: np.ndarray, max_round_trip_px: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Points followed from one frame into another; kept where following them back lands within
    ``max_round_trip_px`` of where they started."""
    window = {"winSize": (21, 21), "maxLevel": 3}
    moved, status, _ = cv2.calcOpticalFlowPyrLK(source_gray, target_gray, points, None, **window)
    back, status_back, _ = cv2.calcOpticalFlowPyrLK(target_gray, source_gray, moved, None, **window)
    round_trip = np.linalg.norm((back - points).reshape(-1, 2), axis=1)
    ok = (status.ravel() == 1) & (status_back.ravel() == 1) & (round_trip < max_round_trip_px)
    return moved.reshape(-1, 2), ok


def _to_track(
    reconstruction,
    names: list[str],
    size: tuple[int, int],
    extra: dict[str, tuple[np.ndarray, list]],
    max_points: int = 1000,
) -> Track:
    """Per-frame cameras and observations of the mapped frames and of those registered by PnP."""
    num = len(names)
    index_of = {name: i for i, name in enumerate(names)}
    camera = next(iter(reconstruction.cameras.values()))
    poses: dict[int, np.ndarray] = {}  # frame index -> w2c 4x4
    seen: dict[int, list[tuple[np.ndarray, int]]] = {}
    for image in reconstruction.images.values():
        if image.has_pose:
            i = index_of[image.name]
            poses[i] = np.vstack([image.cam_from_world().matrix(), [0, 0, 0, 1]])
            seen[i] = [(p.xy, p.point3D_id) for p in image.points2D if p.has_point3D()]
    for name, (w2c, pairs) in extra.items():
        poses[index_of[name]] = np.vstack([w2c, [0, 0, 0, 1]])
        seen[index_of[name]] = pairs
    centers = {i: np.linalg.inv(w2c)[:3, 3] for i, w2c in poses.items()}
    # per point: triangulation angle between the rays of the first and last frames that see it
    frames_of: dict[int, list[int]] = {}
    for i, pairs in seen.items():
        for _, point_id in pairs:
            frames_of.setdefault(point_id, []).append(i)
    angle_of: dict[int, float] = {}
    for point_id, frames_seeing in frames_of.items():
        xyz = reconstruction.points3D[point_id].xyz
        first, last = centers[min(frames_seeing)], centers[max(frames_seeing)]
        a, b = xyz - first, xyz - last
        cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)
        angle_of[point_id] = math.degrees(math.acos(float(np.clip(cosine, -1, 1))))
    c2w = np.full((num, 4, 4), np.nan)
    observations = [np.zeros((0, 6), np.float32) for _ in range(num)]
    for i, w2c in poses.items():
        c2w[i] = np.linalg.inv(w2c)
        rows = []
        for xy, point_id in seen[i]:
            camera_point = w2c[:3, :3] @ reconstruction.points3D[point_id].xyz + w2c[:3, 3]
            if camera_point[2] <= 0:
                continue
            error = float(np.linalg.norm(camera.img_from_cam(camera_point) - xy))
            rows.append(
                (
                    xy[0] / size[1],
                    xy[1] / size[0],
                    camera_point[2],
                    error,
                    angle_of[point_id],
                    len(frames_of[point_id]),
                )
            )
        if rows:
            rows_array = np.array(rows, np.float32)
            best = np.argsort(rows_array[:, OBS_ERROR], kind="stable")[:max_points]
            observations[i] = rows_array[np.sort(best)]
    used = sorted(frames_of)
    points = (
        np.array(
            [
                np.concatenate([reconstruction.points3D[k].xyz, reconstruction.points3D[k].color])
                for k in used
            ],
            np.float32,
        )
        if used
        else np.zeros((0, 6), np.float32)
    )
    return Track(
        size=size,
        K=camera.calibration_matrix(),
        c2w=c2w,
        observations=observations,
        points=points,
        distortion=_distortion_of(reconstruction),
    )


def _join(previous: Track, new: Track, start: int, overlap: int) -> Track:
    """Append ``new`` (whose frame 0 is global frame ``start``) to ``previous`` through the
    similarity that best maps ``new``'s shared frames onto ``previous``'s. An ObservationStore of
    ``previous`` is extended in place (so ``previous`` is consumed); a list is copied."""
    shared = [k for k in range(overlap) if previous.registered[start + k] and new.registered[k]]
    transform = _similarity_from_shared(previous, new, start, shared)
    if transform is None:
        logger.info("chunk at frame %d could not be joined (%d shared frames)", start, len(shared))
        new = Track.empty(new.num_frames, new.size, "chunk not joined")
        scale, rotation, translation = 1.0, np.eye(3), np.zeros(3)
    else:
        scale, rotation, translation = transform
    c2w = new.c2w.copy()
    c2w[:, :3, :3] = rotation @ new.c2w[:, :3, :3]
    c2w[:, :3, 3] = scale * (new.c2w[:, :3, 3] @ rotation.T) + translation
    observations = [o.copy() for o in new.observations]
    for o in observations:
        o[:, OBS_DEPTH] *= scale
    points = new.points.copy()
    points[:, :3] = scale * (points[:, :3] @ rotation.T) + translation
    # frames in the overlap keep the earlier chunk's cameras and points
    return Track(
        size=previous.size,
        K=previous.K if previous.registered.any() else new.K,
        c2w=np.concatenate([previous.c2w, c2w[overlap:]]),
        observations=_extended(previous.observations, observations[overlap:]),
        points=np.concatenate([previous.points, points]),
        distortion=previous.distortion if previous.registered.any() else new.distortion,
    )


def _extended(kept: Sequence[np.ndarray], more: list[np.ndarray]) -> Sequence[np.ndarray]:
    if isinstance(kept, ObservationStore):
        kept.extend(more)
        return kept
    return list(kept) + more


def _similarity_from_shared(previous: Track, new: Track, start: int, shared: list[int]):
    """(scale, rotation, translation) with previous ~ scale * rotation @ new + translation.

    Fitted (Umeyama, then again without the worst fifth) to the world positions that both chunks
    give to the points they see at (nearly) the same pixel of a shared frame: many points spread
    through the scene, so the fit stays well posed when the shared frames barely move."""
    from scipy.spatial import cKDTree

    pixels = np.array([new.size[1], new.size[0]])
    source, target = [], []
    for k in shared:
        a, b = previous.observations[start + k], new.observations[k]
        if len(a) == 0 or len(b) == 0:
            continue
        distance, nearest = cKDTree(a[:, :2] * pixels).query(b[:, :2] * pixels, distance_upper_bound=1.5)
        found = np.isfinite(distance)
        target.append(to_world(previous, start + k, a[nearest[found]]))
        source.append(to_world(new, k, b[found]))
    if sum(len(x) for x in source) < 10:
        return None
    source, target = np.concatenate(source), np.concatenate(target)
    scale, rotation, translation = umeyama(source, target)
    residual = np.linalg.norm(scale * source @ rotation.T + translation - target, axis=1)
    keep = residual <= np.quantile(residual, 0.8)
    return umeyama(source[keep], target[keep])


def _fold_radius_squared(k: float) -> float:
    """Where a barrel (k < 0) folds back: the seen radius r (1 + k r^2) stops growing at
    r^2 = -1 / (3k), and no point beyond it is in view; none for k >= 0."""
    return -1.0 / (3.0 * k) if k < 0 else np.inf


def distorted(normalised: np.ndarray, k: float) -> np.ndarray:
    """Where a lens with radial distortion ``k`` shows normalised image points [N, 2] (z = 1)."""
    return normalised * (1.0 + k * np.sum(normalised**2, axis=-1, keepdims=True))


def undistorted(seen: np.ndarray, k: float, iterations: int = 20) -> np.ndarray:
    """The normalised image points [N, 2] that a lens with distortion ``k`` shows at ``seen``:
    Newton's method on the radius, r_seen = r (1 + k r^2), exact where OpenCV's five fixed-point
    steps leave 0.002 at a strong barrel's corners; it stops at a barrel's fold."""
    if not k:
        return seen.copy()
    seen_radius = np.linalg.norm(seen, axis=-1, keepdims=True)
    fold = np.sqrt(_fold_radius_squared(k))
    radius = np.minimum(seen_radius, fold)
    for _ in range(iterations):
        slope = np.maximum(1.0 + 3.0 * k * radius**2, 1e-6)  # positive up to the fold
        radius = np.clip(radius - (radius * (1.0 + k * radius**2) - seen_radius) / slope, 0.0, fold)
    return seen * radius / np.maximum(seen_radius, 1e-12)


def camera_rays(K: np.ndarray, distortion: float, pixels: np.ndarray) -> np.ndarray:
    """Rays [N, 3] with z = 1 through pixel positions [N, 2] (COLMAP's continuous coordinates:
    the first pixel's centre is 0.5) of a camera with intrinsics ``K`` and radial ``distortion``."""
    seen = (pixels - K[:2, 2]) / np.diag(K)[:2]
    return np.concatenate([undistorted(seen, distortion), np.ones((len(pixels), 1))], axis=1)


def project(K: np.ndarray, distortion: float, points: np.ndarray) -> np.ndarray:
    """Pixel positions [N, 2] of camera-space points [N, 3] (z > 0): the inverse of camera_rays.
    NaN for points beyond a barrel's fold: the lens does not show them, though the formula lands
    them inside."""
    normalised = points[:, :2] / points[:, 2:3]
    pixels = distorted(normalised, distortion) * np.diag(K)[:2] + K[:2, 2]
    pixels[np.sum(normalised**2, axis=-1) >= _fold_radius_squared(distortion)] = np.nan
    return pixels


def camera_points(track: Track, observations: np.ndarray) -> np.ndarray:
    """The observations' 3D points [N, 3] in their frame's camera (OpenCV convention)."""
    height, width = track.size
    pixels = observations[:, :2] * np.array([width, height])
    return camera_rays(track.K, track.distortion, pixels) * observations[:, OBS_DEPTH : OBS_DEPTH + 1]


def to_world(track: Track, index: int, observations: np.ndarray) -> np.ndarray:
    """The observations of frame ``index`` as world points [N, 3]."""
    return camera_points(track, observations) @ track.c2w[index, :3, :3].T + track.c2w[index, :3, 3]


def to_camera(track: Track, index: int, points: np.ndarray) -> np.ndarray:
    """World points [N, 3] in frame ``index``'s camera (OpenCV convention)."""
    rotation, centre = track.c2w[index, :3, :3], track.c2w[index, :3, 3]
    return (points - centre) @ rotation


def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity taking ``source`` points onto ``target`` (Umeyama 1991)."""
    mean_s, mean_t = source.mean(0), target.mean(0)
    s, t = source - mean_s, target - mean_t
    u, singular, vt = np.linalg.svd(t.T @ s / len(s))
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ flip @ vt
    scale = float(np.trace(np.diag(singular) @ flip) / max(s.var(0).sum(), 1e-12))
    return scale, rotation, mean_t - scale * rotation @ mean_s


#: how much a point moved in from a neighbouring frame counts against the frame's own (its
#: reprojection error is divided by it): it went through two cameras' errors, not one
BORROWED_WEIGHT = 0.5


def observations_near(track: Track, index: int, radius: int, weight: float = BORROWED_WEIGHT) -> np.ndarray:
    """Frame ``index``'s observations plus those of registered frames within ``radius``,
    moved into this frame's camera: a denser set of points for fusion. Borrowed points carry
    their reprojection error scaled by ``1 / weight`` so that they count less."""
    own = track.observations[index]
    if radius <= 0 or not track.registered[index]:
        return own
    nearest = nearest_plausible_depth(track, index)
    borrowed = [own]
    for j in range(max(0, index - radius), min(track.num_frames, index + radius + 1)):
        if j != index and track.registered[j]:
            borrowed.append(moved_into(track, index, j, track.observations[j], weight, nearest))
    return np.concatenate(borrowed)


def nearest_plausible_depth(track: Track, index: int) -> float:
    """A point moved into frame ``index`` far nearer than anything the frame itself sees is a
    mistrack or behind an occluder: nearer than a quarter of its points' median depth."""
    own = track.observations[index]
    return 0.25 * float(np.median(own[:, OBS_DEPTH])) if len(own) else 0.0


def moved_into(
    track: Track, index: int, source: int, observations: np.ndarray, weight: float, nearest: float = 0.0
) -> np.ndarray:
    """Observations of registered frame ``source`` moved into frame ``index``'s camera: those in
    front of it (nearer than ``nearest`` dropped) and in its picture, their reprojection error
    scaled by ``1 / weight``."""
    height, width = track.size
    here = to_camera(track, index, to_world(track, source, observations))
    in_front = here[:, 2] > max(nearest, 1e-9)
    pixels = project(track.K, track.distortion, here[in_front])
    u, v = pixels[:, 0] / width, pixels[:, 1] / height
    inside = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
    moved = observations[in_front][inside].copy()
    moved[:, 0], moved[:, 1], moved[:, OBS_DEPTH] = u[inside], v[inside], here[in_front][inside, 2]
    moved[:, OBS_ERROR] /= weight
    return moved.astype(np.float32)
