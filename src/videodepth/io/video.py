"""Streaming video input: probe a file, pick a processing size, decode frames one at a time.

A "video" is either a file PyAV can decode or a folder of images (``.png``/``.jpg``, natural
name order) played at ``folder_fps``. Frames come out as HxWx3 uint8 RGB at the processing size.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from videodepth.errors import InputError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MIN_INPUT_SIDE = 8
MAX_PROCESSING_SIDE = 8192
MIN_MAX_RES = 64
# FFmpeg "demuxers" that open single images or plain text; such files are not videos to us.
_NON_VIDEO_FORMATS = {"image2", "tty"}


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, before any resizing or subsampling."""

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int
    duration_s: float
    pix_fmt: str
    has_alpha: bool
    is_grayscale: bool


# --------------------------------------------------------------------------- sizes


def processing_size(height: int, width: int, max_res: int, multiple: int = 64) -> tuple[int, int]:
    """The (h, w) a video is processed at.

    Each side is rounded to the nearest ``multiple`` (Python's ``round``, so ties go to the even
    multiple, as in the reference implementations); if the larger rounded side then exceeds
    ``max_res``, the *original* size is scaled by ``max_res / max(original)`` and rounded again.
    The result can therefore exceed ``max_res`` by less than half a multiple. Never below ``multiple``.
    """
    if max_res < MIN_MAX_RES:
        raise InputError(f"max resolution must be at least {MIN_MAX_RES}, got {max_res}")

    def to_multiple(side: float) -> int:
        return max(multiple, round(side / multiple) * multiple)

    h, w = to_multiple(height), to_multiple(width)
    if max(h, w) > max_res:
        scale = max_res / max(height, width)
        h, w = to_multiple(height * scale), to_multiple(width * scale)
    return h, w


# --------------------------------------------------------------------------- pixel formats


def _format_has_alpha(fmt: av.VideoFormat) -> bool:
    return any(component.is_alpha for component in fmt.components)


def _format_is_gray(fmt: av.VideoFormat) -> bool:
    colour = [c for c in fmt.components if not c.is_alpha]
    return len(colour) == 1 and not fmt.has_palette


def _composite_over_black(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:4].astype(np.uint16)
    return ((rgba[..., :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize HxWx3 to ``size`` = (h, w): area averaging when shrinking, bilinear otherwise."""
    h, w = size
    if rgb.shape[:2] == (h, w):
        return rgb
    shrinking = h <= rgb.shape[0] and w <= rgb.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=interpolation)


# --------------------------------------------------------------------------- image folders


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    images = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(images, key=_natural_key)


def _read_image_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"cannot read image {path}")
    if image.dtype == np.uint16:
        image = np.rint(image / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"unsupported image type {image.dtype} in {path}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return _composite_over_black(cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _probe_folder(folder: Path, fps: float) -> VideoInfo:
    images = list_images(folder)
    if not images:
        raise InputError(f"{folder} is a folder with no {'/'.join(IMAGE_SUFFIXES)} images; expected a video")
    first = cv2.imread(str(images[0]), cv2.IMREAD_UNCHANGED)
    if first is None:
        raise InputError(f"cannot read image {images[0]}")
    channels = 1 if first.ndim == 2 else first.shape[2]
    pix_fmt = {1: "gray", 3: "rgb24", 4: "rgba"}.get(channels, f"{channels}ch")
    return VideoInfo(
        path=folder,
        width=int(first.shape[1]),
        height=int(first.shape[0]),
        fps=float(fps),
        num_frames=len(images),
        duration_s=len(images) / fps,
        pix_fmt=pix_fmt + ("16" if first.dtype == np.uint16 else ""),
        has_alpha=channels == 4,
        is_grayscale=channels == 1,
    )


# --------------------------------------------------------------------------- video files


def _open_container(path: Path) -> Any:
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not a readable video ({_av_reason(error)})") from None
    if container.format.name in _NON_VIDEO_FORMATS or container.format.name.endswith("_pipe"):
        container.close()
        raise InputError(f"{path} is an image, not a video; pass a folder of images instead")
    if not container.streams.video:
        container.close()
        raise InputError(f"{path} has no video stream")
    return container


def _av_reason(error: BaseException) -> str:
    return str(getattr(error, "strerror", None) or error).splitlines()[0]


def _stream_fps(stream: Any, num_frames: int, duration_s: float) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return float(rate)
    if num_frames > 0 and duration_s > 0:
        return num_frames / duration_s
    raise InputError("cannot determine the frame rate")


def _declared_duration(container: Any, stream: Any) -> float | None:
    """Duration the file claims for its video, in seconds, when that is trustworthy."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    # The container duration covers all streams; it only speaks for the video when it is alone.
    if container.duration and len(container.streams) == 1:
        return container.duration / av.time_base
    return None


def _first_frame(container: Any, path: Path) -> Any:
    try:
        return next(container.decode(video=0))
    except StopIteration:
        raise InputError(f"{path} contains no decodable video frames") from None
    except av.error.FFmpegError as error:
        raise InputError(f"{path}: cannot decode the first frame ({_av_reason(error)})") from None


def _probe_file(path: Path) -> VideoInfo:
    container = _open_container(path)
    with container:
        stream = container.streams.video[0]
        frame = _first_frame(container, path)
        duration = _declared_duration(container, stream)
        if duration is None and container.duration:
            duration = container.duration / av.time_base
        fps = _stream_fps(stream, stream.frames, duration or 0.0)
        num_frames = stream.frames if stream.frames > 0 else max(1, round((duration or 0.0) * fps))
        return VideoInfo(
            path=path,
            width=frame.width,
            height=frame.height,
            fps=fps,
            num_frames=num_frames,
            duration_s=duration if duration else num_frames / fps,
            pix_fmt=frame.format.name,
            has_alpha=_format_has_alpha(frame.format),
            is_grayscale=_format_is_gray(frame.format),
        )


def probe(path: str | os.PathLike[str], folder_fps: float = 24.0) -> VideoInfo:
    """Describe a video file or image folder; raise :class:`InputError` if it is not usable."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        if folder_fps <= 0:
            raise InputError(f"frame rate for image folder {path} must be positive, got {folder_fps}")
        info = _probe_folder(path, folder_fps)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        raise InputError(f"{path} is an image, not a video; pass a folder of images instead")
    else:
        info = _probe_file(path)
    if min(info.width, info.height) < MIN_INPUT_SIDE:
        raise InputError(
            f"{path} is {info.width}x{info.height}; inputs must be at least {MIN_INPUT_SIDE}x{MIN_INPUT_SIDE}"
        )
    return info


# --------------------------------------------------------------------------- frame sources


def _frame_time(frame: Any, index: int, fps: float) -> Fraction:
    if frame.pts is not None and frame.time_base is not None:
        return frame.pts * frame.time_base
    return Fraction(index) / Fraction(fps).limit_denominator(1001)


def _decode_file(info: VideoInfo) -> Iterator[tuple[Fraction, Any]]:
    """(presentation time, av.VideoFrame) pairs; raise InputError where decoding breaks."""
    path = info.path
    container = _open_container(path)
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = container.decode(stream)
        decoded = 0
        first_time = last_time = None
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.FFmpegError as error:
                raise InputError(
                    f"{path}: decoding failed at frame {decoded} ({_av_reason(error)})"
                ) from None
            time = _frame_time(frame, decoded, info.fps)
            first_time = time if first_time is None else first_time
            last_time = time
            yield time, frame
            decoded += 1
        if decoded == 0:
            raise InputError(f"{path} contains no decodable video frames")
        _check_not_truncated(
            path, _declared_duration(container, stream), float(last_time - first_time), decoded, info.fps
        )


def _check_not_truncated(
    path: Path, declared: float | None, last_time: float, decoded: int, fps: float
) -> None:
    """A file whose frames stop well before its declared end was cut short: say so, never truncate silently."""
    if declared is None:
        return
    period = 1.0 / fps
    missing = declared - (last_time + period)
    if missing > max(2 * period, 0.02 * declared):
        raise InputError(
            f"{path}: decoding failed at frame {decoded}: the stream ends at {last_time + period:.2f}s "
            f"but the file declares {declared:.2f}s (truncated or corrupt?)"
        )


def _folder_frames(info: VideoInfo) -> Iterator[tuple[Fraction, Path]]:
    period = 1 / Fraction(info.fps).limit_denominator(1001)
    for index, image in enumerate(list_images(info.path)):
        yield index * period, image


def _closest_to_grid(timed: Iterable[tuple[Fraction, Any]], rate: Fraction) -> Iterator[Any]:
    """For each output time k/rate, the input frame closest to it (earlier one on ties).

    Works on presentation times, so variable-frame-rate input is resampled in real time; a frame
    may repeat when the input has a gap longer than one output period.
    """
    previous: tuple[Fraction, Any] | None = None
    origin: Fraction | None = None
    k = 0
    for time, item in timed:
        origin = time if origin is None else origin
        time -= origin
        while k / rate <= time:
            target = k / rate
            if previous is not None and target - previous[0] <= time - target:
                yield previous[1]
            else:
                yield item
            k += 1
        previous = (time, item)


# --------------------------------------------------------------------------- reader


class VideoReader:
    """Lazily decoded, resized and optionally frame-rate-subsampled frames of one video.

    ``target_fps`` (None or <= 0: keep every frame) resamples by presentation time when it is
    below the input rate; at or above the input rate every frame is kept at the input rate.
    ``process_length`` (None or < 0: all) caps the number of frames yielded.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_res: int = 1024,
        target_fps: float | None = None,
        process_length: int | None = None,
        multiple: int = 64,
        folder_fps: float = 24.0,
    ) -> None:
        if max_res < MIN_MAX_RES:
            raise InputError(f"max resolution must be at least {MIN_MAX_RES}, got {max_res}")
        if process_length == 0:
            raise InputError("process length must be positive (or -1 for the whole video)")
        self.info = probe(path, folder_fps=folder_fps)
        self.size = processing_size(self.info.height, self.info.width, max_res, multiple)
        if max(self.size) > MAX_PROCESSING_SIDE:
            raise InputError(
                f"{self.info.path}: processing size {self.size[1]}x{self.size[0]} exceeds "
                f"{MAX_PROCESSING_SIDE} on a side; lower the max resolution"
            )
        self.process_length = process_length if process_length is not None and process_length > 0 else None
        self._target_rate = self._resampling_rate(target_fps)
        self.fps = float(self._target_rate) if self._target_rate else self.info.fps
        self.stride = max(1, round(self.info.fps / target_fps)) if target_fps and target_fps > 0 else 1
        self.num_frames = self._estimate_num_frames()
        self._warn_about_pixel_format()

    def _resampling_rate(self, target_fps: float | None) -> Fraction | None:
        if target_fps is None or target_fps <= 0 or target_fps >= self.info.fps:
            return None
        return Fraction(target_fps).limit_denominator(1001)

    def _estimate_num_frames(self) -> int:
        count = self.info.num_frames
        if self._target_rate:
            span = (count - 1) / self.info.fps
            count = math.floor(span * float(self._target_rate) + 1e-6) + 1
        return min(count, self.process_length) if self.process_length else count

    def _warn_about_pixel_format(self) -> None:
        if self.info.has_alpha:
            logger.warning(
                "%s has an alpha channel (%s); compositing it over black",
                self.info.path.name,
                self.info.pix_fmt,
            )
        elif self.info.is_grayscale:
            logger.warning("%s is grayscale (%s); converting to RGB", self.info.path.name, self.info.pix_fmt)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    def frames(self, start: int = 0) -> Iterator[np.ndarray]:
        """Yield frames from output index ``start`` on (earlier ones are decoded and skipped)."""
        is_folder = self.info.path.is_dir()
        timed = _folder_frames(self.info) if is_folder else _decode_file(self.info)
        if self._target_rate:
            sources: Iterable[Any] = _closest_to_grid(timed, self._target_rate)
        else:
            sources = (item for _, item in timed)
        to_rgb = _read_image_rgb if is_folder else _frame_to_rgb
        yield from self._convert(sources, to_rgb, start)

    def _convert(self, sources: Iterable[Any], to_rgb: Any, start: int) -> Iterator[np.ndarray]:
        if self.process_length is not None and start >= self.process_length:
            return
        last_source, last_rgb = None, None
        for index, source in enumerate(sources):
            if index >= start:
                if source is last_source:  # a repeated frame when resampling across a gap
                    yield last_rgb.copy()
                else:
                    last_source, last_rgb = source, resize_rgb(to_rgb(source), self.size)
                    yield last_rgb
            if self.process_length is not None and index + 1 >= self.process_length:
                return


def _frame_to_rgb(frame: Any) -> np.ndarray:
    if _format_has_alpha(frame.format):
        return _composite_over_black(frame.to_ndarray(format="rgba"))
    return frame.to_ndarray(format="rgb24")
