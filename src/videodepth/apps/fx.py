"""Depth effects over a whole video, streamed: one RGB frame and one depth frame in, one result out.

:func:`run_effect` pairs the frames of a video with the frames of its depth (see
:mod:`videodepth.apps.depthvideo`), maps the depth to ``[0, 1]`` with one normalisation for the whole
video, applies an effect from :mod:`videodepth.apps.effects` frame by frame and streams the results
to outputs chosen by their path: ``*.mp4`` is a video, any other path a folder of PNG frames (RGBA
where the effect has transparency); the point cloud writes a folder of PLY files plus a preview. Every
output appears atomically when complete; on any error nothing is left behind.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from tqdm.auto import tqdm

from videodepth.apps import effects
from videodepth.apps.depthvideo import DepthRange, Normalization, fit_to, measure_range
from videodepth.apps.pointcloud import backproject, pointcloud_preview, write_ply
from videodepth.errors import InputError, OutputError
from videodepth.io import PendingDir, RgbVideoWriter, VideoReader, check_colormap, colorize
from videodepth.io.depthfiles import DepthVideo, open_depth

# --------------------------------------------------------------------------------------------- effects


@dataclass
class Effect:
    """One effect with its parameters; ``render`` turns (rgb, disparity in [0, 1]) into an image."""

    name: ClassVar[str] = ""
    #: whether frames are RGBA (PNG folders keep the alpha; videos get :meth:`video_frame`)
    has_alpha: ClassVar[bool] = False

    def render(self, rgb: np.ndarray, disp: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def video_frame(self, image: np.ndarray) -> np.ndarray:
        """What a video shows of a rendered frame: RGBA frames lose their alpha (colour is premultiplied)."""
        return image[..., :3]

    def check(self) -> None:
        """Raise :class:`InputError` for bad parameters before any output is opened."""
        rgb = np.zeros((8, 8, 3), np.uint8)
        self.render(rgb, np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8))


@dataclass
class Fog(Effect):
    name: ClassVar[str] = "fog"
    density: float = 0.25
    color: tuple[float, float, float] = (200.0, 200.0, 210.0)
    near: float = effects.DEFAULT_NEAR
    far: float = effects.DEFAULT_FAR

    def render(self, rgb: np.ndarray, disp: np.ndarray) -> np.ndarray:
        return effects.fog(rgb, disp, self.density, self.color, self.near, self.far)


@dataclass
class Slice(Effect):
    name: ClassVar[str] = "slice"
    has_alpha: ClassVar[bool] = True
    lo: float = 0.5
    hi: float = 1.0
    background: str = "transparent"

    def render(self, rgb: np.ndarray, disp: np.ndarray) -> np.ndarray:
        # Dropped pixels have zero colour either way, so a video (alpha dropped) shows them black.
        return effects.depth_slice(rgb, disp, self.lo, self.hi, background=self.background)  # type: ignore[arg-type]


@dataclass
class Matte(Effect):
    name: ClassVar[str] = "matte"
    has_alpha: ClassVar[bool] = True
    split: float = 0.5
    softness: float = 0.1

    def render(self, rgb: np.ndarray, disp: np.ndarray) -> np.ndarray:
        return effects.apply_matte(rgb, effects.matte(disp, self.split, self.softness))

    def video_frame(self, image: np.ndarray) -> np.ndarray:
        # A matte video is the alpha itself, as grayscale (white = foreground), for compositing tools.
        return np.repeat(image[..., 3:4], 3, axis=2)


@dataclass
class Refocus(Effect):
    name: ClassVar[str] = "refocus"
    focus: float = 0.8
    aperture: float = 16.0
    max_radius: int = 12
    levels: int = 6

    def render(self, rgb: np.ndarray, disp: np.ndarray) -> np.ndarray:
        return effects.refocus(rgb, disp, self.focus, self.aperture, self.max_radius, self.levels)


@dataclass
class Stereo(Effect):
    """``baseline_px = None`` uses 3 % of the frame width."""

    name: ClassVar[str] = "stereo"
    baseline_px: float | None = None
    mode: str = "sbs"
    convergence: float = 0.5

    def render(self, rgb: np.ndarray, disp: np.ndarray) -> np.ndarray:
        baseline = 0.03 * rgb.shape[1] if self.baseline_px is None else self.baseline_px
        return effects.stereo(rgb, disp, baseline, self.mode, self.convergence)  # type: ignore[arg-type]


@dataclass
class Colormap(Effect):
    """Colour-mapped depth, optionally next to the input frame."""

    name: ClassVar[str] = "colormap"
    cmap: str = "inferno"
    side_by_side: bool = False

    def render(self, rgb: np.ndarray, disp: np.ndarray) -> np.ndarray:
        effects.check_rgb(rgb)
        picture = colorize(effects.check_disp(disp, rgb.shape), check_colormap(self.cmap))
        return np.concatenate([rgb, picture], axis=1) if self.side_by_side else picture


@dataclass
class PointCloud(Effect):
    """Per-frame PLY files; ``stride`` keeps every n-th pixel in each direction."""

    name: ClassVar[str] = "pointcloud"
    fov_deg: float = 60.0
    near: float = effects.DEFAULT_NEAR
    far: float = effects.DEFAULT_FAR
    stride: int = 1
    preview_frame: int = 0
    cmap: str = "inferno"

    def cloud(self, rgb: np.ndarray, disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        effects.check_rgb(rgb)
        points = backproject(disp, self.fov_deg, self.near, self.far)
        step = self.stride
        return points[::step, ::step], np.ascontiguousarray(rgb[::step, ::step])

    def render(self, rgb: np.ndarray, disp: np.ndarray) -> np.ndarray:
        """The preview: input | colour-mapped depth | point-cloud render (a square as tall as the frame)."""
        points, colors = self.cloud(rgb, disp)
        height = rgb.shape[0]
        cloud = pointcloud_preview(points, colors, size=max(16, height))
        cloud = (
            cv2.resize(cloud, (height, height), interpolation=cv2.INTER_AREA)
            if cloud.shape[0] != height
            else cloud
        )
        return np.concatenate([rgb, colorize(disp, check_colormap(self.cmap)), cloud], axis=1)

    def check(self) -> None:
        effects.check_number(self.stride, "stride", low=1.0, high=64.0)
        effects.check_number(self.preview_frame, "preview frame", low=0.0)
        if int(self.stride) != self.stride:
            raise InputError(f"stride must be a whole number, got {self.stride}")
        super().check()


EFFECTS: dict[str, type[Effect]] = {
    cls.name: cls for cls in (Fog, Slice, Matte, Refocus, Stereo, PointCloud, Colormap)
}


def make_effect(name: str, **params: Any) -> Effect:
    """The effect ``name`` with ``params`` (None values keep the defaults), its parameters checked."""
    if name not in EFFECTS:
        raise InputError(f"unknown effect {name!r}; choose one of: {', '.join(EFFECTS)}")
    effect = EFFECTS[name](**{key: value for key, value in params.items() if value is not None})
    effect.check()
    return effect


# --------------------------------------------------------------------------------------------- outputs


class FrameSink:
    """A destination for rendered frames: ``write`` each in order, then ``close`` (or ``abort``)."""

    def write(self, index: int, rgb: np.ndarray, disp: np.ndarray, image: np.ndarray | None) -> None:
        raise NotImplementedError

    def close(self) -> list[Path]:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class VideoSink(FrameSink):
    def __init__(self, path: Path, fps: float, effect: Effect) -> None:
        self.effect = effect
        self.writer = RgbVideoWriter(path, fps)

    def write(self, index: int, rgb: np.ndarray, disp: np.ndarray, image: np.ndarray | None) -> None:
        self.writer.write_rgb(index, np.ascontiguousarray(self.effect.video_frame(image)))

    def close(self) -> list[Path]:
        return [self.writer.close()]

    def abort(self) -> None:
        self.writer.abort()


def _write_png(path: Path, image: np.ndarray) -> None:
    code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
    if not cv2.imwrite(str(path), cv2.cvtColor(image, code)):
        raise OutputError(f"cannot write {path}")


class PngSink(FrameSink):
    """A folder ``000000.png, 000001.png, ...`` (RGBA when the effect has transparency)."""

    def __init__(self, path: Path) -> None:
        self.pending = PendingDir(path)

    def write(self, index: int, rgb: np.ndarray, disp: np.ndarray, image: np.ndarray | None) -> None:
        _write_png(self.pending.tmp / f"{index:06d}.png", image)

    def close(self) -> list[Path]:
        return [self.pending.commit()]

    def abort(self) -> None:
        self.pending.discard()


class PointCloudSink(FrameSink):
    """A folder of ``000000.ply ...`` plus ``preview.png`` (input | depth | cloud) of one frame."""

    def __init__(self, path: Path, effect: PointCloud) -> None:
        self.effect = effect
        self.pending = PendingDir(path)
        self.preview_written = False

    def write(self, index: int, rgb: np.ndarray, disp: np.ndarray, image: np.ndarray | None) -> None:
        points, colors = self.effect.cloud(rgb, disp)
        write_ply(self.pending.tmp / f"{index:06d}.ply", points, colors)
        if index == self.effect.preview_frame:
            _write_png(self.pending.tmp / "preview.png", self.effect.render(rgb, disp))
            self.preview_written = True

    def close(self) -> list[Path]:
        if not self.preview_written:
            self.abort()
            raise InputError(f"preview frame {self.effect.preview_frame} is past the end of the video")
        return [self.pending.commit()]

    def abort(self) -> None:
        self.pending.discard()


def _is_video_path(path: Path) -> bool:
    return path.suffix.lower() == ".mp4"


def _open_sinks(effect: Effect, outputs: list[Path], fps: float) -> list[FrameSink]:
    sinks: list[FrameSink] = []
    try:
        for path in outputs:
            if isinstance(effect, PointCloud):
                if path.suffix:
                    raise InputError(
                        f"pointcloud writes a folder of PLY files; give a folder name, not {path.name}"
                    )
                sinks.append(PointCloudSink(path, effect))
            elif isinstance(effect, Stereo) and effect.mode == "left-right":
                sinks.extend(_stereo_pair_sinks(path, fps, effect))
            elif _is_video_path(path):
                sinks.append(VideoSink(path, fps, effect))
            elif path.suffix:
                raise InputError(f"output {path}: use a .mp4 file or a folder name (for PNG frames)")
            else:
                sinks.append(PngSink(path))
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return sinks


class _ViewSink(FrameSink):
    """Sends one view (0 = left, 1 = right) of a stacked stereo pair to another sink."""

    def __init__(self, inner: FrameSink, view: int) -> None:
        self.inner, self.view = inner, view

    def write(self, index: int, rgb: np.ndarray, disp: np.ndarray, image: np.ndarray | None) -> None:
        self.inner.write(index, rgb, disp, image[self.view])

    def close(self) -> list[Path]:
        return self.inner.close()

    def abort(self) -> None:
        self.inner.abort()


def _stereo_pair_sinks(path: Path, fps: float, effect: Effect) -> list[FrameSink]:
    """``left-right`` stereo: ``NAME_left`` and ``NAME_right`` next to the requested path."""
    sinks: list[FrameSink] = []
    for view, side in enumerate(("left", "right")):
        target = path.with_name(f"{path.stem}_{side}{path.suffix}")
        inner = VideoSink(target, fps, effect) if _is_video_path(path) else PngSink(target)
        sinks.append(_ViewSink(inner, view))
    return sinks


# --------------------------------------------------------------------------------------------- the job


@dataclass
class FxOptions:
    """How video and depth are read. ``max_res`` (None: original size) caps the longest side of the
    frames; ``process_length`` (None: all) uses only the first frames of both."""

    max_res: int | None = None
    process_length: int | None = None
    normalization: Normalization = "video"
    clip_percent: float = 0.0


@dataclass
class FxReport:
    effect: str
    outputs: list[Path]
    num_frames: int
    size: tuple[int, int]
    depth_range: DepthRange
    seconds: float
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.effect}: {self.num_frames} frames at {self.size[1]}x{self.size[0]} in {self.seconds:.1f} s "
            f"(depth range [{self.depth_range.lo:.4g}, {self.depth_range.hi:.4g}] -> [0, 1])"
        )


def open_video(video: Path, options: FxOptions) -> VideoReader:
    """The video at its original size (or capped by ``options.max_res``), every frame."""
    from videodepth.io import probe

    info = probe(video)
    # Without a cap, a limit at (or, for tiny videos, above) the longest side keeps the original size.
    max_res = max(64, info.width, info.height) if options.max_res is None else options.max_res
    return VideoReader(video, max_res=max_res, process_length=options.process_length, multiple=1)


def _check_lengths(reader: VideoReader, depth: DepthVideo, options: FxOptions) -> int:
    from videodepth.inference.runner import count_frames

    video_frames = count_frames(reader)
    depth_frames = (
        depth.num_frames if options.process_length is None else min(depth.num_frames, options.process_length)
    )
    if video_frames != depth_frames:
        hint = (
            "" if options.process_length else "; use --process-length to take only the first frames of both"
        )
        raise InputError(
            f"the video has {video_frames} frames but the depth {depth.path.name} has "
            f"{depth.num_frames}{hint}"
        )
    return video_frames


def _paired_frames(
    reader: VideoReader, depth: DepthVideo, num_frames: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    ended = object()
    pairs = itertools.zip_longest(
        reader.frames(), itertools.islice(depth.frames(), num_frames), fillvalue=ended
    )
    for index, (rgb, disp) in enumerate(pairs):
        if rgb is ended or disp is ended:
            short = "video" if rgb is ended else "depth"
            raise InputError(f"the {short} ended after {index} frames, expected {num_frames}")
        yield rgb, disp


def run_effect(
    effect: Effect,
    video: str | Path,
    depth: str | Path | DepthVideo,
    outputs: list[str | Path],
    options: FxOptions | None = None,
    progress: bool = False,
) -> FxReport:
    """Apply ``effect`` to every frame of ``video`` with its ``depth``; write ``outputs``."""
    started = time.perf_counter()
    options = options or FxOptions()
    if not outputs:
        raise InputError("no output given: pass --out PATH (a .mp4 file or a folder)")
    effect.check()
    reader = open_video(Path(video), options)
    source = depth if isinstance(depth, DepthVideo) else open_depth(depth)
    num_frames = _check_lengths(reader, source, options)
    notes = []
    if source.size != reader.size:
        notes.append(
            f"depth {source.size[1]}x{source.size[0]} resized to the video's {reader.size[1]}x{reader.size[0]}"
        )
    depth_range = measure_range(source, options.normalization, options.clip_percent)
    sinks = _open_sinks(effect, [Path(p) for p in outputs], reader.fps)
    try:
        frames = _paired_frames(reader, source, num_frames)
        for index, (rgb, raw) in enumerate(
            tqdm(frames, total=num_frames, desc=effect.name, unit="frame", disable=not progress)
        ):
            disp = fit_to(depth_range.apply(raw), reader.size)
            image = None if isinstance(effect, PointCloud) else effect.render(rgb, disp)
            for sink in sinks:
                sink.write(index, rgb, disp, image)
        written = [path for sink in sinks for path in sink.close()]
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return FxReport(
        effect.name, written, num_frames, reader.size, depth_range, time.perf_counter() - started, notes
    )


@contextlib.contextmanager
def predicted_depth(
    video: Path,
    pipeline: Any,
    settings: Any,
    max_res: int | None,
    process_length: int | None,
    progress: bool = True,
) -> Iterator[Path]:
    """Run the depth model on ``video`` into a temporary npz (removed afterwards) and yield its path."""
    from videodepth.inference.runner import InputOptions, OutputOptions, run_video

    with tempfile.TemporaryDirectory(prefix="videodepth-fx-") as work:
        inputs = InputOptions(max_res=max_res or pipeline.config.max_res, process_length=process_length)
        outputs = OutputOptions(out_dir=Path(work), kinds=("npz",), size="original")
        report = run_video(pipeline, video, settings, inputs, outputs, progress=progress)
        yield report.outputs[0]
