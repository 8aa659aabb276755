"""Streaming output writers for per-frame disparity.

Every writer follows one protocol: it opens its (temporary) output when constructed, takes frames
through ``write(frame_index, disparity, rgb)`` with ``disparity`` an HxW float array in [0, 1],
and ``close()`` finalises and renames the result into place; ``abort()`` removes everything. Used
as a context manager, an exception aborts. Memory use does not grow with the video length.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import zipfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from videodepth.choices import WRITER_KINDS
from videodepth.errors import InputError, OutputError
from videodepth.io.atomic import (
    PendingDir,
    PendingFile,
    ensure_writable_dir,
    partial_name,
    remove_stale_partials,
)
from videodepth.io.colormap import check_colormap, colorize
from videodepth.io.depthfiles import PNG16_MAX
from videodepth.io.video import resize_rgb

logger = logging.getLogger(__name__)

_COPY_CHUNK = 4 * 1024 * 1024


def fps_fraction(fps: float | Fraction) -> Fraction:
    """Exact rational frame rate: 29.97 -> 2997/100, 30000/1001 (as a float) -> 30000/1001."""
    if isinstance(fps, Fraction):
        return fps
    if not fps > 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def _os_reason(error: BaseException) -> str:
    return str(getattr(error, "strerror", None) or error).splitlines()[0]


class _ClosesOnSuccess:
    """Context-manager protocol of writers: ``close`` on success, ``abort`` on an exception."""

    def close(self) -> Any:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class DepthWriter(_ClosesOnSuccess):
    """Base class: frame checks and close/abort bookkeeping."""

    #: whether ``frame_index`` must count 0, 1, 2, ... (true for single-file outputs)
    sequential = True

    def __init__(self, path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> None:
        self.path = Path(path)
        self.size = size
        self.frames_written = 0
        self._finished = False

    # -- protocol ---------------------------------------------------------------------------
    def write(self, frame_index: int, disparity: np.ndarray, rgb: np.ndarray | None = None) -> None:
        if self._finished:
            raise RuntimeError(f"writer for {self.path} is already closed")
        disparity = self._check_frame(frame_index, disparity)
        try:
            self._write(frame_index, disparity, rgb)
        except (OSError, av.error.FFmpegError) as error:
            self.abort()
            raise OutputError(f"cannot write {self.path}: {_os_reason(error)}") from None
        self.frames_written += 1

    def close(self) -> Path:
        """Finalise and move the output to :attr:`path`, which is returned."""
        if self._finished:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise OutputError(f"no frames were written to {self.path}")
        try:
            self._finish()
        except (OSError, av.error.FFmpegError) as error:
            self.abort()
            raise OutputError(f"cannot write {self.path}: {_os_reason(error)}") from None
        except BaseException:
            self.abort()
            raise
        self._finished = True
        return self._commit()

    def abort(self) -> None:
        """Drop everything written so far; never raises."""
        if self._finished:
            return
        self._finished = True
        with contextlib.suppress(Exception):
            self._discard()

    # -- for subclasses -----------------------------------------------------------------------
    def _write(self, frame_index: int, disparity: np.ndarray, rgb: np.ndarray | None) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush and close the temporary output (before it is renamed)."""

    def _commit(self) -> Path:
        raise NotImplementedError

    def _discard(self) -> None:
        raise NotImplementedError

    def _check_frame(self, frame_index: int, disparity: np.ndarray) -> np.ndarray:
        if self.sequential and frame_index != self.frames_written:
            raise ValueError(f"{self.path}: expected frame {self.frames_written}, got {frame_index}")
        if frame_index < 0:
            raise ValueError(f"{self.path}: negative frame index {frame_index}")
        disparity = np.asarray(disparity, dtype=np.float32)
        if disparity.ndim != 2:
            raise ValueError(f"{self.path}: disparity must be HxW, got shape {disparity.shape}")
        if self.size is None:
            self.size = (int(disparity.shape[0]), int(disparity.shape[1]))
        elif disparity.shape != tuple(self.size):
            raise ValueError(f"{self.path}: frame of shape {disparity.shape}, expected {tuple(self.size)}")
        return disparity


class _FileWriter(DepthWriter):
    def __init__(self, path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> None:
        super().__init__(path, size)
        self._pending = PendingFile(self.path)

    def _commit(self) -> Path:
        return self._pending.commit()

    def _discard(self) -> None:
        self._pending.discard()


class _FolderWriter(DepthWriter):
    sequential = False

    def __init__(self, folder: str | os.PathLike[str], size: tuple[int, int] | None = None) -> None:
        super().__init__(folder, size)
        self._pending = PendingDir(self.path)

    def _frame_path(self, frame_index: int, suffix: str) -> Path:
        return self._pending.tmp / f"{frame_index:06d}{suffix}"

    def _commit(self) -> Path:
        return self._pending.commit()

    def _discard(self) -> None:
        self._pending.discard()


# --------------------------------------------------------------------------- videos


def _pad_to_even(image: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides; repeat the last row/column rather than distort the picture."""
    pad_h, pad_w = image.shape[0] % 2, image.shape[1] % 2
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return image


def _video_codec() -> str:
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


class _VideoWriter(_FileWriter):
    """RGB frames into an mp4 (H.264 when available), padded to even size, at an exact frame rate."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float | Fraction,
        cmap: str = "inferno",
        size: tuple[int, int] | None = None,
    ) -> None:
        self.cmap = check_colormap(cmap)
        self.rate = fps_fraction(fps)
        super().__init__(path, size)
        try:
            self._container = av.open(str(self._pending.tmp), mode="w")
        except (OSError, av.error.FFmpegError) as error:
            raise OutputError(f"cannot create {self.path}: {_os_reason(error)}") from None
        self._stream: Any = None

    def _picture(self, disparity: np.ndarray, rgb: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def _write(self, frame_index: int, disparity: np.ndarray, rgb: np.ndarray | None) -> None:
        picture = _pad_to_even(self._picture(disparity, rgb))
        if self._stream is None:
            self._stream = self._add_stream(picture.shape[1], picture.shape[0])
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
        frame.pts = frame_index
        frame.time_base = 1 / self.rate
        self._container.mux(self._stream.encode(frame))

    def _add_stream(self, width: int, height: int) -> Any:
        codec = _video_codec()
        stream = self._container.add_stream(codec, rate=self.rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "17", "preset": "medium"}
        else:
            stream.bit_rate = 20_000_000
        return stream

    def _finish(self) -> None:
        if self._stream is not None:
            self._container.mux(self._stream.encode(None))
        self._container.close()

    def _discard(self) -> None:
        with contextlib.suppress(Exception):
            self._container.close()
        super()._discard()


class ColormapVideoWriter(_VideoWriter):
    """Colour-mapped disparity as an mp4."""

    def _picture(self, disparity: np.ndarray, rgb: np.ndarray | None) -> np.ndarray:
        return colorize(disparity, self.cmap)


class RgbVideoWriter(_VideoWriter):
    """Plain RGB frames as an mp4 (the demo clip, effect outputs)."""

    def _picture(self, disparity: np.ndarray, rgb: np.ndarray | None) -> np.ndarray:
        return np.asarray(rgb, dtype=np.uint8)[..., :3]

    def write_rgb(self, frame_index: int, rgb: np.ndarray) -> None:
        self.write(frame_index, np.zeros(rgb.shape[:2], np.float32), rgb)


class SideBySideVideoWriter(_VideoWriter):
    """Input frame | colour-mapped disparity, as an mp4; the input is resized to the depth size."""

    def _picture(self, disparity: np.ndarray, rgb: np.ndarray | None) -> np.ndarray:
        if rgb is None:
            raise ValueError(f"{self.path}: the side-by-side writer needs the RGB frame")
        rgb = resize_rgb(np.asarray(rgb, dtype=np.uint8)[..., :3], disparity.shape)
        return np.concatenate([rgb, colorize(disparity, self.cmap)], axis=1)


# --------------------------------------------------------------------------- arrays


class NpzWriter(_FileWriter):
    """One ``.npz`` with ``depth`` (float32 [T, H, W] disparity, or float16) and ``fps`` (float64).

    Frames stream to a raw temporary file; ``close`` writes the npy header (T is known by then)
    and copies the raw data into a zip64 member in chunks, so memory stays bounded. The member
    is deflated (level 1: level 6, numpy's ``savez_compressed``, is 25% slower for 0.5% less).
    float16 halves the file; its step near 1 is 5e-4, coarser than 16-bit PNG's 1.5e-5.
    ``num_frames_hint`` is only compared with the final count, for a debug message.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        num_frames_hint: int | None = None,
        fps: float | None = None,
        size: tuple[int, int] | None = None,
        float16: bool = False,
        compress: bool = True,
    ) -> None:
        super().__init__(path, size)
        self.fps = fps
        self.num_frames_hint = num_frames_hint
        self.dtype = "<f2" if float16 else "<f4"
        self.compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        remove_stale_partials(self.path.with_suffix(".raw"))
        self._raw_path = partial_name(self.path.with_suffix(".raw"))
        try:
            self._raw = open(self._raw_path, "wb")  # noqa: SIM115 - lives until close/abort
        except OSError as error:
            raise OutputError(f"cannot create {self._raw_path}: {_os_reason(error)}") from None

    def _write(self, frame_index: int, disparity: np.ndarray, rgb: np.ndarray | None) -> None:
        self._raw.write(np.ascontiguousarray(disparity, dtype=self.dtype).tobytes())

    def _finish(self) -> None:
        self._raw.close()
        if self.num_frames_hint is not None and self.num_frames_hint != self.frames_written:
            logger.debug(
                "%s: %d frames written, %d expected", self.path, self.frames_written, self.num_frames_hint
            )
        header = {"descr": self.dtype, "fortran_order": False, "shape": (self.frames_written, *self.size)}
        with zipfile.ZipFile(
            self._pending.tmp, "w", compression=self.compression, compresslevel=1
        ) as archive:
            with (
                archive.open("depth.npy", "w", force_zip64=True) as member,
                open(self._raw_path, "rb") as raw,
            ):
                np.lib.format.write_array_header_1_0(member, header)
                shutil.copyfileobj(raw, member, _COPY_CHUNK)
            if self.fps is not None:
                with archive.open("fps.npy", "w") as member:
                    np.lib.format.write_array(member, np.asarray(float(self.fps), dtype=np.float64))
        self._raw_path.unlink()

    def _discard(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()
        with contextlib.suppress(FileNotFoundError):
            self._raw_path.unlink()
        super()._discard()


class Png16Writer(_FolderWriter):
    """``folder/000000.png ...``: 16-bit grayscale, value = round(disparity * 65535)."""

    def _write(self, frame_index: int, disparity: np.ndarray, rgb: np.ndarray | None) -> None:
        values = np.clip(np.nan_to_num(disparity, nan=0.0), 0.0, 1.0)
        image = np.rint(values * PNG16_MAX).astype(np.uint16)
        target = self._frame_path(frame_index, ".png")
        if not cv2.imwrite(str(target), image):
            raise OSError(f"OpenCV could not write {target}")


class ExrWriter(_FolderWriter):
    """``folder/000000.exr ...``: one float32 channel ``Z`` holding the disparity, ZIP-compressed."""

    def _write(self, frame_index: int, disparity: np.ndarray, rgb: np.ndarray | None) -> None:
        import OpenEXR

        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        channels = {"Z": np.ascontiguousarray(disparity, dtype=np.float32)}
        OpenEXR.File(header, channels).write(str(self._frame_path(frame_index, ".exr")))


# --------------------------------------------------------------------------- fan-out


class MultiWriter(_ClosesOnSuccess):
    """Sends every frame to several writers; closes them all, or aborts them all on failure."""

    def __init__(self, writers: list[DepthWriter]) -> None:
        self.writers = list(writers)

    @property
    def paths(self) -> list[Path]:
        return [writer.path for writer in self.writers]

    def write(self, frame_index: int, disparity: np.ndarray, rgb: np.ndarray | None = None) -> None:
        self.write_each(frame_index, [disparity] * len(self.writers), rgb)

    def write_each(self, frame_index: int, frames: list[np.ndarray], rgb: np.ndarray | None = None) -> None:
        """One frame per writer, in order (a depth writer beside, say, a confidence writer)."""
        try:
            for writer, frame in zip(self.writers, frames, strict=True):
                writer.write(frame_index, frame, rgb)
        except BaseException:
            self.abort()
            raise

    def close(self) -> list[Path]:
        closed: list[Path] = []
        try:
            for writer in self.writers:
                closed.append(writer.close())
        except BaseException:
            self.abort()
            raise
        return closed

    def abort(self) -> None:
        for writer in self.writers:
            writer.abort()


def output_path(out_dir: str | os.PathLike[str], stem: str, kind: str) -> Path:
    """Where ``make_writers`` puts a given kind of output."""
    names = {
        "mp4": f"{stem}_depth.mp4",
        "sbs": f"{stem}_sbs.mp4",
        "npz": f"{stem}.npz",
        "png16": f"{stem}_png16",
        "exr": f"{stem}_exr",
    }
    if kind not in names:
        raise InputError(f"unknown output kind {kind!r}; choose from: {', '.join(WRITER_KINDS)}")
    return Path(out_dir) / names[kind]


def make_writers(
    out_dir: str | os.PathLike[str],
    stem: str,
    kinds: list[str],
    fps: float,
    size: tuple[int, int] | None = None,
    cmap: str = "inferno",
    num_frames: int | None = None,
    npz_float16: bool = False,
) -> list[DepthWriter]:
    """One writer per requested kind (duplicates ignored), all under ``out_dir``."""
    unique = list(dict.fromkeys(kind.lower() for kind in kinds))
    for kind in unique:
        output_path(out_dir, stem, kind)  # validates the kind before anything is created
    check_colormap(cmap)
    ensure_writable_dir(out_dir)
    writers: list[DepthWriter] = []
    try:
        for kind in unique:
            writers.append(
                _make_writer(kind, output_path(out_dir, stem, kind), fps, size, cmap, num_frames, npz_float16)
            )
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    return writers


def _make_writer(
    kind: str,
    path: Path,
    fps: float,
    size: tuple[int, int] | None,
    cmap: str,
    num_frames: int | None,
    npz_float16: bool,
) -> DepthWriter:
    if kind == "mp4":
        return ColormapVideoWriter(path, fps, cmap, size=size)
    if kind == "sbs":
        return SideBySideVideoWriter(path, fps, cmap, size=size)
    if kind == "npz":
        return NpzWriter(path, num_frames_hint=num_frames, fps=fps, size=size, float16=npz_float16)
    if kind == "png16":
        return Png16Writer(path, size=size)
    return ExrWriter(path, size=size)
