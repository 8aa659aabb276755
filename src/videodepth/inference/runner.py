"""The file job behind ``videodepth run``: one video in, depth files out, in bounded memory.

Pass 1 streams frames through the strategy and appends raw predictions to a disk buffer,
checkpointing after every window; pass 2 applies one normalisation for the whole video and
streams frames to every writer, each of which renames its output into place only when
complete. An interrupted job resumes from its last finished window.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import re
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from videodepth.errors import InputError
from videodepth.geometry import (
    GEOMETRY_KINDS,
    MAX_CLOUD_POINTS,
    GeometryOptions,
    PointCloudBuilder,
    Track,
    VideoGeometry,
    find_shots,
    geometry_output_path,
    per_shot,
    refine_shots,
    shot_index,
    track_frames,
    write_cameras,
)
from videodepth.inference.buffer import FrameBuffer
from videodepth.inference.options import (
    InputOptions,
    OutputOptions,
    check_geometry_kinds,
    check_intrinsics,
    check_limits,
    open_reader,
    output_size,
    output_stem,
)
from videodepth.inference.pipeline import VideoDepthPipeline
from videodepth.inference.settings import RunSettings
from videodepth.inference.windows import StageTimer
from videodepth.io import (
    MultiWriter,
    Png16Writer,
    VideoReader,
    atomic_file,
    ensure_writable_dir,
    make_writers,
)

WORK_FOLDER = ".videodepth-work"


@dataclass
class JobReport:
    video: Path
    outputs: list[Path]
    num_frames: int
    size: tuple[int, int]
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    peak_vram_mib: float | None = None
    resumed_from_frame: int = 0
    geometry: VideoGeometry | None = None
    notes: list[str] = field(default_factory=list)  # things asked for and not done, and why

    @property
    def processed_frames(self) -> int:
        """Frames predicted by this run (a resumed run skips those an earlier one finished)."""
        return self.num_frames - self.resumed_from_frame

    def summary(self) -> str:
        processed = max(self.processed_frames, 1)
        per_frame = {k: 1000 * v / processed for k, v in self.stage_seconds.items()}
        # Tracking and fusion always cover the whole video.
        per_frame.update(
            {
                k: 1000 * v / max(self.num_frames, 1)
                for k, v in self.stage_seconds.items()
                if k in ("tracking", "fusion")
            }
        )
        names = ("encode", "denoise", "decode") + (("tracking", "fusion") if self.geometry else ())
        stages = " / ".join(f"{k} {per_frame.get(k, 0.0):.1f}" for k in names)
        vram = f", peak VRAM {self.peak_vram_mib:.0f} MiB" if self.peak_vram_mib is not None else ""
        size = f"{self.size[1]}x{self.size[0]}"
        rate = f"{self.processed_frames / max(self.seconds, 1e-9):.2f} frames/s"
        if self.resumed_from_frame and not self.processed_frames:  # only the later passes ran
            done, rate = (
                f"resumed: all {self.num_frames} frames were predicted before",
                "no frame predicted now",
            )
        elif self.resumed_from_frame:
            done = f"resumed from frame {self.resumed_from_frame}: {self.processed_frames} of {self.num_frames} frames"
        else:
            done = f"{self.num_frames} frames"
        line = (
            f"{self.video}: {done} at {size} in {self.seconds:.1f} s "
            f"({rate}); ms/frame {' / '.join(names)}: "
            f"{stages}; peak RAM {self.peak_rss_mib:.0f} MiB{vram}; {torch.get_num_threads()} CPU thread(s)"
        )
        lines = [line, *([self.geometry.summary()] if self.geometry else []), *self.notes]
        return "\n  ".join(lines)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count_frames(reader: VideoReader) -> int:
    """Exact number of frames the reader will yield. MP4/MOV headers state it; other
    containers, variable frame rates and resampling need a decoding pass."""
    trusted = reader.info.path.suffix.lower() in (".mp4", ".mov", ".m4v") or reader.info.path.is_dir()
    if trusted and reader.fps == reader.info.fps:
        return reader.num_frames
    return sum(1 for _ in tqdm(reader, desc="counting frames", unit="frame", leave=False))


def _fingerprint(
    video: Path, settings: RunSettings, inputs: InputOptions, model_id: str, geometry: GeometryOptions | None
) -> str:
    stat = video.stat()
    payload = json.dumps(
        [
            str(video.resolve()),
            stat.st_size,
            stat.st_mtime_ns,
            dataclasses.asdict(settings),
            dataclasses.asdict(inputs),
            model_id,
            geometry and dataclasses.asdict(geometry),
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _save_atomically(obj: dict, path: Path) -> None:
    with atomic_file(path) as temporary:
        torch.save(obj, temporary)


def run_video(
    pipeline: VideoDepthPipeline,
    video: str | Path,
    settings: RunSettings,
    inputs: InputOptions | None = None,
    outputs: OutputOptions | None = None,
    resume: bool = False,
    model_id: str = "",
    progress: bool = True,
    geometry: GeometryOptions | None = None,
    name: str | None = None,
) -> JobReport:
    """Depth files for one video, named ``name`` (default: the video's stem). With ``geometry``,
    the learned depth is refined by the video's own multi-view geometry (tracked once;
    ``resume`` reuses a finished tracking)."""
    video = Path(video)
    inputs, outputs = inputs or InputOptions(), outputs or OutputOptions()
    check_geometry_kinds(outputs.kinds, geometry)
    started = time.perf_counter()
    out_dir = ensure_writable_dir(outputs.out_dir)
    multiple = max(64, pipeline.size_multiple)
    reader = open_reader(video, inputs, multiple)
    check_limits(reader, inputs, outputs)
    check_intrinsics(reader, geometry.tracking.intrinsics if geometry else None)
    num_frames = count_frames(reader)
    if num_frames < 1:
        raise InputError(f"{video}: no frames to process")
    check_limits(reader, inputs, outputs, num_frames)
    height, width = reader.size
    stem = name or output_stem(video)

    work = out_dir / WORK_FOLDER / stem
    fingerprint = _fingerprint(video, settings, inputs, model_id, geometry)
    state_file, raw_file = work / "state.pt", work / "raw.f32"
    state, timer = None, StageTimer(pipeline.device)
    if resume and state_file.exists():
        state = torch.load(state_file, weights_only=False)
        if state.get("fingerprint") != fingerprint:
            raise InputError(
                f"{video}: the saved progress in {work} was made with other settings; "
                "re-run without --resume to start over"
            )
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    buffer = FrameBuffer(raw_file, (height, width), create=state is None)
    stats = state["stats"] if state else {"lo": np.inf, "hi": -np.inf}
    confidence: FrameBuffer | None = None
    resumed_from = (
        0 if state is None else (num_frames if state["pass1_done"] else _first_unfinished_frame(state))
    )
    try:
        if state is None or not state["pass1_done"]:

            def keep(start: int, depth: np.ndarray) -> None:
                buffer.write(start, depth)
                stats["lo"] = min(stats["lo"], float(depth.min()))
                stats["hi"] = max(stats["hi"], float(depth.max()))

            def checkpoint(engine_state: dict) -> None:
                _save_atomically(
                    {
                        "fingerprint": fingerprint,
                        "pass1_done": False,
                        "engine": engine_state,
                        "stats": dict(stats),
                    },
                    state_file,
                )

            pipeline.run(
                reader.frames,
                num_frames,
                (height, width),
                settings,
                keep,
                resume_state=state["engine"] if state else None,
                checkpoint=checkpoint,
                progress=progress,
                timer=timer,
            )
            _save_atomically(
                {"fingerprint": fingerprint, "pass1_done": True, "stats": dict(stats)}, state_file
            )
        stage_seconds = dict(timer.seconds)
        geometry_result = None
        if geometry is not None:
            learned = buffer
            try:
                geometry_result, buffer, confidence, stats, clouds = _refine_with_geometry(
                    learned, video, reader, inputs, outputs, num_frames, work, geometry, resume, progress
                )
            finally:
                learned.close()
            stage_seconds.update(geometry_result.seconds)
        written = _write_outputs(
            buffer, stats, reader, video, num_frames, outputs, stem, inputs, progress, confidence
        )
        notes = []
        if geometry_result is not None:
            written += _write_geometry_files(geometry_result, clouds, outputs, stem, reader, stats)
            unwritten = [k for k in ("cameras", "ply") if k in outputs.kinds and not geometry_result.used]
            if unwritten:
                notes.append(f"note: --save {','.join(unwritten)} not written: the geometry was used nowhere")
    finally:
        buffer.close()
        if confidence is not None:
            confidence.close()
    if not outputs.keep_work:
        shutil.rmtree(work, ignore_errors=True)
        _remove_if_empty(out_dir / WORK_FOLDER)
    return JobReport(
        video=video,
        outputs=written,
        num_frames=num_frames,
        size=(height, width),
        seconds=time.perf_counter() - started,
        stage_seconds=stage_seconds,
        peak_rss_mib=peak_rss_mib(),
        peak_vram_mib=torch.cuda.max_memory_allocated() / 2**20 if pipeline.device.type == "cuda" else None,
        resumed_from_frame=resumed_from,
        geometry=geometry_result,
        notes=notes,
    )


def _frames_at(video: Path, inputs: InputOptions, max_res: int) -> VideoReader:
    """Another reader of the same frames as the job's, at ``max_res`` on the long side."""
    return VideoReader(
        video,
        max_res=max_res,
        target_fps=inputs.target_fps,
        process_length=inputs.process_length,
        multiple=1,
        folder_fps=inputs.folder_fps,
    )


def _find_shots(video: Path, inputs: InputOptions, num_frames: int, geometry: GeometryOptions) -> list[range]:
    """The video's shots (cuts found on small frames: one cheap decoding pass)."""
    reader = _frames_at(video, inputs, geometry.cuts.compare_side)
    return find_shots(reader.frames(), num_frames, geometry.cuts)


def _track_file(work: Path, shot: range, num_frames: int) -> Path:
    whole = shot.start == 0 and shot.stop == num_frames
    return work / ("track.npz" if whole else f"track_{shot.start:06d}-{shot.stop:06d}.npz")


def _track_shots(
    video: Path,
    inputs: InputOptions,
    num_frames: int,
    shots: list[range],
    work: Path,
    geometry: GeometryOptions,
    resume: bool,
    progress: bool,
) -> tuple[list[Path], list[float]]:
    """Camera tracking of each shot into a file of the work folder, written as the shot finishes
    (``--resume`` reuses it; a resume whose every shot is tracked decodes nothing here). Returns
    the files and each shot's tracking seconds."""
    files = [_track_file(work, shot, num_frames) for shot in shots]
    seconds = [0.0] * len(shots)
    to_track = [k for k, file in enumerate(files) if not (resume and file.exists())]
    if not to_track:
        return files, seconds
    reader = _frames_at(video, inputs, geometry.tracking.max_side)
    options = dataclasses.replace(geometry.tracking, source_size=(reader.info.height, reader.info.width))
    with tqdm(total=num_frames, desc="tracking", unit="frame", disable=not progress) as bar:
        for k, (shot, frames) in enumerate(per_shot(reader.frames(), shots)):
            if k not in to_track:
                bar.update(len(shot))
                continue
            started = time.perf_counter()
            track = track_frames(frames, len(shot), options, progress=bar.update, first_frame=shot.start)
            with atomic_file(files[k]) as temporary:
                track.save(temporary)
            track.close()
            seconds[k] = time.perf_counter() - started
    return files, seconds


def _refine_with_geometry(
    learned: FrameBuffer,
    video: Path,
    reader: VideoReader,
    inputs: InputOptions,
    outputs: OutputOptions,
    num_frames: int,
    work: Path,
    geometry: GeometryOptions,
    resume: bool,
    progress: bool,
) -> tuple[VideoGeometry, FrameBuffer, FrameBuffer, dict, dict[int, PointCloudBuilder]]:
    """Pass 1b: fuse the learned depth with each shot's tracked geometry into new disk buffers.

    Shots are in different units (each its own reconstruction), so where the geometry was used
    the output is normalised shot by shot; where it was used nowhere, the statistics are the
    learned depth's, exactly as without ``--geometry``."""
    shots = _find_shots(video, inputs, num_frames, geometry)
    track_files, tracking_seconds = _track_shots(
        video, inputs, num_frames, shots, work, geometry, resume, progress
    )
    fused = FrameBuffer(work / "fused.f32", reader.size, create=True)
    confidence = FrameBuffer(work / "confidence.f32", reader.size, create=True)
    ranges = [{"start": shot.start, "lo": np.inf, "hi": -np.inf} for shot in shots]
    clouds: dict[int, PointCloudBuilder] = {}

    def load(k: int) -> Track:
        track = Track.load(track_files[k])
        if "ply" in outputs.kinds:  # the video's point budget shared by its shots
            budget = max(1, MAX_CLOUD_POINTS * len(shots[k]) // num_frames)
            clouds[k] = PointCloudBuilder(track, reader.size, max_points=budget)
        return track

    def emit(index: int, rgb: np.ndarray, disparity: np.ndarray, conf: np.ndarray) -> None:
        fused.write(index, disparity)
        confidence.write(index, conf)
        k = shot_index(shots, index)
        ranges[k]["lo"] = min(ranges[k]["lo"], float(disparity.min()))
        ranges[k]["hi"] = max(ranges[k]["hi"], float(disparity.max()))
        if k in clouds:
            clouds[k].add(index - shots[k].start, disparity, conf, rgb)

    try:
        with tqdm(total=num_frames, desc="fusing", unit="frame", disable=not progress) as bar:
            tracks = (load(k) for k in range(len(shots)))
            result = refine_shots(
                tracks, shots, learned.read, reader.frames(), emit, geometry, progress=bar.update
            )
    except BaseException:
        fused.close()
        confidence.close()
        raise
    for shot_result, seconds in zip(result.results, tracking_seconds, strict=True):
        shot_result.seconds = {"tracking": seconds, **shot_result.seconds}
    lo, hi = min(r["lo"] for r in ranges), max(r["hi"] for r in ranges)
    stats = {"lo": lo, "hi": hi, "shots": ranges if result.used and len(shots) > 1 else []}
    return result, fused, confidence, stats, clouds


def _normalisation_spans(stats: dict) -> list[dict]:
    """Pass 2's normalisation, {"start", "lo", "hi"} per span: one per shot where the shots'
    geometry came in different units (``stats["shots"]``), else one for the whole video."""
    return stats.get("shots") or [{"start": 0, "lo": stats["lo"], "hi": stats["hi"]}]


def _write_geometry_files(
    result: VideoGeometry,
    clouds: dict[int, PointCloudBuilder],
    outputs: OutputOptions,
    stem: str,
    reader: VideoReader,
    stats: dict,
) -> list[Path]:
    """Cameras and point clouds of the shots whose geometry passed its checks. What an earlier run
    of this video left under these names and this run does not write (the clouds of shots now
    cut or rejected, cameras where no shot is used now) is removed, so that the folder never
    mixes two runs' geometry. ``stats`` are pass 2's normalisation (per shot, or one for the
    video), which the cameras file records so that the depth files can be put back in its units."""
    used = [k for k, shot_result in enumerate(result.results) if shot_result.used]
    written: list[Path] = []
    if "cameras" in outputs.kinds and used:
        tracks = [(k + 1, result.shots[k], result.results[k].track) for k in used]
        spans = _normalisation_spans(stats)  # one per shot wherever a shot's geometry was used
        ranges = [(spans[k]["lo"], spans[k]["hi"]) for k in used]
        size = output_size(reader, outputs)
        written += write_cameras(
            outputs.out_dir, stem, tracks, size, per_shot=len(result.shots) > 1, output_ranges=ranges
        )
    for k in (k for k in used if k in clouds):
        shot = None if len(result.shots) == 1 else k + 1
        written.append(clouds[k].write(geometry_output_path(outputs.out_dir, stem, "ply", shot)))
    _remove_stale_geometry(outputs, stem, written)
    return written


def _remove_stale_geometry(outputs: OutputOptions, stem: str, written: list[Path]) -> None:
    stale: list[Path] = []
    if "ply" in outputs.kinds:
        stale += [geometry_output_path(outputs.out_dir, stem, "ply")]
        # `<stem>_points_shotNNN.ply` cannot be another video's cloud: every cloud name ends in
        # `_points.ply` or `_points_shotNNN.ply`, so the stem is all that precedes `_points_shot`
        shot_cloud = re.compile(rf"{re.escape(stem)}_points_shot\d{{3,}}\.ply")
        stale += [path for path in Path(outputs.out_dir).glob(f"{glob.escape(stem)}_points_shot*.ply")
                  if shot_cloud.fullmatch(path.name)]  # fmt: skip
    if "cameras" in outputs.kinds:
        stale += [
            geometry_output_path(outputs.out_dir, stem, "cameras"),
            Path(outputs.out_dir) / f"{stem}_colmap",
        ]
    for path in stale:
        if path in written:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _first_unfinished_frame(state: dict) -> int:
    decoder = state["engine"]["decoder"]
    return int(decoder["pending_start"])


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def _write_outputs(
    buffer: FrameBuffer,
    stats: dict,
    reader: VideoReader,
    video: Path,
    num_frames: int,
    outputs: OutputOptions,
    stem: str,
    inputs: InputOptions,
    progress: bool,
    confidence: FrameBuffer | None = None,
) -> list[Path]:
    """Pass 2: one normalisation for the whole video (one per shot where ``stats["shots"]`` says
    so: the shots' geometry came in different units), streamed to every writer."""
    size = output_size(reader, outputs)
    spans = _normalisation_spans(stats)
    starts = [span["start"] for span in spans]
    shots = [range(start, stop) for start, stop in zip(starts, [*starts[1:], num_frames], strict=True)]
    needs_rgb = "sbs" in outputs.kinds
    rgb_frames = None
    if needs_rgb:
        rgb_frames = _frames_at(video, inputs, max(size)).frames()
    depth_kinds = [k for k in outputs.kinds if k not in GEOMETRY_KINDS]
    writers = MultiWriter(
        make_writers(
            outputs.out_dir,
            stem,
            depth_kinds,
            reader.fps,
            size=size,
            cmap=outputs.cmap,
            num_frames=num_frames,
            npz_float16=outputs.npz_float16,
        )
    )
    with_confidence = confidence is not None and "conf" in outputs.kinds
    if with_confidence:  # confidence in [0, 1] as 16-bit PNGs, the last writer
        writers.writers.append(Png16Writer(geometry_output_path(outputs.out_dir, stem, "conf"), size))
    try:
        for index in tqdm(range(num_frames), desc="writing", unit="frame", disable=not progress):
            span = spans[shot_index(shots, index)]
            depth = (buffer.read(index) - span["lo"]) / max(span["hi"] - span["lo"], 1e-12)
            if depth.shape != size:
                depth = cv2.resize(depth, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
            rgb = None
            if rgb_frames is not None:
                rgb = next(rgb_frames)
                if rgb.shape[:2] != size:
                    rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            depth = np.clip(depth, 0.0, 1.0)
            if not with_confidence:
                writers.write(index, depth, rgb)
            else:
                conf = cv2.resize(confidence.read(index), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
                writers.write_each(index, [depth] * (len(writers.writers) - 1) + [np.clip(conf, 0, 1)], rgb)
        return writers.close()
    except BaseException:
        writers.abort()
        raise
