"""Reading depth files: the one place that knows the npz, npy, 16-bit PNG and OpenEXR layouts.

* What ``videodepth run`` writes (see :mod:`videodepth.io.writers`): an ``.npz`` with ``depth``
  float32/float16 ``[T, H, W]`` and ``fps``, a folder of 16-bit PNGs (value = disparity * 65535)
  or of OpenEXR files (channel ``Z``). :func:`read_depth_npz`, :func:`read_npz_fps`,
  :func:`read_png16_folder` and :func:`read_exr_folder` load them whole.
* :func:`open_depth` opens the same files (plus a plain ``.npy`` ``[T, H, W]``) for streaming,
  one frame at a time: the npz member is read out of the zip archive (stored or deflated), so
  the array is never loaded whole; an npy is memory-mapped; folders are read in name order.
* :func:`read_png16` returns one 16-bit PNG as stored (uint16), for the benchmark layouts whose
  PNGs hold metric depth at their own scale (``videodepth.data.readers``).

Every failure is an :class:`InputError` naming the file.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from videodepth.errors import InputError

PNG16_MAX = 65535


def _reason(error: BaseException) -> str:
    return str(getattr(error, "strerror", None) or error).splitlines()[0]


# --------------------------------------------------------------------------- single images


def read_png16(path: str | os.PathLike[str]) -> np.ndarray:
    """A 16-bit PNG's values as stored (uint16, [H, W] or [H, W, C])."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"cannot read depth image {path}")
    if image.dtype != np.uint16:
        raise InputError(f"depth image {path} is {image.dtype}, expected a 16-bit PNG")
    return image


def read_png16_disparity(path: str | os.PathLike[str]) -> np.ndarray:
    """float32 [H, W] in [0, 1] from a grayscale 16-bit PNG (value / 65535)."""
    image = read_png16(path)
    if image.ndim != 2:
        raise InputError(f"depth image {path} has {image.shape[2]} channels, expected a grayscale PNG")
    return image.astype(np.float32) / PNG16_MAX


def read_exr_channel(path: str | os.PathLike[str], channel: str = "Z") -> np.ndarray:
    """float32 [H, W]: one channel of an OpenEXR file."""
    import OpenEXR

    try:
        with OpenEXR.File(str(path)) as exr:
            return np.asarray(exr.channels()[channel].pixels, dtype=np.float32)
    except (OSError, RuntimeError, KeyError) as error:
        raise InputError(f"cannot read channel {channel!r} of {path} ({_reason(error)})") from None


# --------------------------------------------------------------------------- whole arrays


def read_depth_npz(path: str | os.PathLike[str]) -> np.ndarray:
    """The ``depth`` array (as float32 [T, H, W]) of an npz written by ``NpzWriter``."""
    path = Path(path)
    try:
        with np.load(path) as archive:
            return archive["depth"].astype(np.float32, copy=False)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(f"cannot read depth from {path}: {_reason(error)}") from None


def read_npz_fps(path: str | os.PathLike[str]) -> float | None:
    """The frame rate stored next to ``depth``, or None if the file has none."""
    path = Path(path)
    try:
        with np.load(path) as archive:
            return float(archive["fps"]) if "fps" in archive.files else None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(f"cannot read {path}: {_reason(error)}") from None


def _frame_files(folder: str | os.PathLike[str], suffix: str) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
    files = sorted(folder.glob(f"*{suffix}"))
    if not files:
        raise InputError(f"no {suffix} files in {folder}")
    return files


def read_png16_folder(folder: str | os.PathLike[str]) -> np.ndarray:
    """float32 [T, H, W] disparity in [0, 1] from a ``Png16Writer`` folder."""
    return np.stack([read_png16_disparity(file) for file in _frame_files(folder, ".png")])


def read_exr_folder(folder: str | os.PathLike[str], channel: str = "Z") -> np.ndarray:
    """float32 [T, H, W] from the ``channel`` of every EXR in an ``ExrWriter`` folder."""
    return np.stack([read_exr_channel(file, channel) for file in _frame_files(folder, ".exr")])


# --------------------------------------------------------------------------- streaming


class DepthVideo:
    """A sequence of float32 ``[H, W]`` depth frames that is read lazily, possibly several times."""

    path: Path
    num_frames: int
    size: tuple[int, int]

    def frames(self) -> Iterator[np.ndarray]:
        raise NotImplementedError


def _read_npy_header(stream: BinaryIO, name: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        version = np.lib.format.read_magic(stream)
        reader = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = reader(stream)
    except (ValueError, OSError, EOFError) as error:
        raise InputError(f"{name} is not a valid .npy array ({str(error).splitlines()[0]})") from None
    if fortran_order:
        raise InputError(f"{name} is stored in Fortran order; save it with C order")
    return shape, dtype


def _check_depth_layout(shape: tuple[int, ...], dtype: np.dtype, name: str) -> tuple[int, int, int]:
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"{name} must hold depth of shape [T, H, W], got {list(shape)}")
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)) or dtype.hasobject:
        raise InputError(f"{name} must hold real numbers, got {dtype}")
    return int(shape[0]), int(shape[1]), int(shape[2])


class NpzDepth(DepthVideo):
    """The ``depth`` member of an npz, streamed frame by frame out of the zip archive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith(".npy")]
        except (OSError, zipfile.BadZipFile) as error:
            raise InputError(f"{path} is not a readable .npz file ({str(error).splitlines()[0]})") from None
        if "depth.npy" in names:
            self.member = "depth.npy"
        elif len(names) == 1:
            self.member = names[0]
        else:
            raise InputError(
                f"{path} has no 'depth' array (found: {', '.join(n[:-4] for n in names) or 'none'})"
            )
        with zipfile.ZipFile(path) as archive, archive.open(self.member) as stream:
            shape, self.dtype = _read_npy_header(stream, f"{path}:{self.member}")
        self.num_frames, height, width = _check_depth_layout(shape, self.dtype, f"{path}:{self.member}")
        self.size = (height, width)

    def frames(self) -> Iterator[np.ndarray]:
        frame_bytes = self.size[0] * self.size[1] * self.dtype.itemsize
        with zipfile.ZipFile(self.path) as archive, archive.open(self.member) as stream:
            _read_npy_header(stream, str(self.path))
            for index in range(self.num_frames):
                data = stream.read(frame_bytes)
                if len(data) != frame_bytes:
                    raise InputError(f"{self.path}: depth data ends at frame {index} of {self.num_frames}")
                yield np.frombuffer(data, dtype=self.dtype).reshape(self.size).astype(np.float32)


class NpyDepth(DepthVideo):
    """A ``[T, H, W]`` .npy file, memory-mapped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as error:
            raise InputError(f"{path} is not a readable .npy file ({str(error).splitlines()[0]})") from None
        self.num_frames, height, width = _check_depth_layout(array.shape, array.dtype, str(path))
        self.size = (height, width)
        del array

    def frames(self) -> Iterator[np.ndarray]:
        array = np.load(self.path, mmap_mode="r")
        for index in range(self.num_frames):
            yield np.asarray(array[index], dtype=np.float32)


class FolderDepth(DepthVideo):
    """A folder of 16-bit PNG or EXR depth frames (``videodepth run --save png16`` / ``exr``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        exr = sorted(path.glob("*.exr"))
        png = sorted(path.glob("*.png"))
        if exr and png:
            raise InputError(f"{path} mixes .exr and .png files; keep one kind of depth frame per folder")
        self.files = exr or png
        if not self.files:
            raise InputError(f"{path} holds no .png or .exr depth frames")
        self._read = read_exr_channel if exr else read_png16_disparity
        first = self._read(self.files[0])
        self.num_frames, self.size = len(self.files), (int(first.shape[0]), int(first.shape[1]))

    def frames(self) -> Iterator[np.ndarray]:
        for file in self.files:
            frame = self._read(file)
            if frame.shape != self.size:
                raise InputError(
                    f"{file} is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                    f"{self.size[1]}x{self.size[0]}"
                )
            yield frame


def open_depth(path: str | os.PathLike[str]) -> DepthVideo:
    """Open a depth video (npz, npy, png16 or exr folder) for streaming; :class:`InputError` if unusable."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"depth not found: {path}")
    if path.is_dir():
        return FolderDepth(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return NpzDepth(path)
    if suffix == ".npy":
        return NpyDepth(path)
    raise InputError(f"{path}: depth must be an .npz, an .npy or a folder of png16/exr frames")
