"""Depth videos read one frame at a time, and the one normalisation an effect uses for a whole video.

Accepted inputs (what ``videodepth run`` writes, plus a plain array file):

* ``.npz`` with a ``depth`` array ``[T, H, W]`` (or a single array): the member is streamed out of the
  zip archive (stored or deflated), so the array is never loaded whole;
* ``.npy`` ``[T, H, W]``: memory-mapped;
* a folder of 16-bit PNGs (``png16``) or of OpenEXR files (``exr``, channel ``Z``), in name order.

Values are taken as relative disparity (near = high). :class:`DepthRange` maps them to ``[0, 1]`` with
one affine map for the whole video (min-max or percentile-clipped), so effects do not flicker.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import cv2
import numpy as np

from videodepth.data.readers import read_png16
from videodepth.errors import InputError
from videodepth.io.colormap import normalize
from videodepth.io.writers import PNG16_MAX

Normalization = Literal["video", "none"]
# How many depth values the percentile estimate looks at, over the whole video (bounded memory).
PERCENTILE_SAMPLE_BUDGET = 2_000_000


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
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
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
            raise InputError(f"{path} has no 'depth' array (found: {', '.join(n[:-4] for n in names) or 'none'})")
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


def _read_png16(path: Path) -> np.ndarray:
    image = read_png16(path)
    if image.ndim != 2:
        raise InputError(f"depth image {path} has {image.shape[2]} channels, expected a grayscale PNG")
    return image.astype(np.float32) / PNG16_MAX


def _read_exr(path: Path) -> np.ndarray:
    import OpenEXR

    try:
        with OpenEXR.File(str(path)) as exr:
            return np.asarray(exr.channels()["Z"].pixels, dtype=np.float32)
    except (OSError, RuntimeError, KeyError) as error:
        raise InputError(f"cannot read channel 'Z' of {path} ({str(error).splitlines()[0]})") from None


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
        self._read = _read_exr if exr else _read_png16
        first = self._read(self.files[0])
        self.num_frames, self.size = len(self.files), (int(first.shape[0]), int(first.shape[1]))

    def frames(self) -> Iterator[np.ndarray]:
        for file in self.files:
            frame = self._read(file)
            if frame.shape != self.size:
                raise InputError(f"{file} is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                                 f"{self.size[1]}x{self.size[0]}")
            yield frame


def open_depth(path: str | Path) -> DepthVideo:
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


@dataclass(frozen=True)
class DepthRange:
    """One affine map ``[lo, hi] -> [0, 1]`` (clipped) applied to every frame of a video."""

    lo: float
    hi: float

    def apply(self, depth: np.ndarray) -> np.ndarray:
        return normalize(depth, self.lo, self.hi)


def _sample(frame: np.ndarray, per_frame: int) -> np.ndarray:
    flat = frame.ravel()
    step = max(1, flat.size // per_frame)
    return flat[::step]


def measure_range(
    depth: DepthVideo, normalization: Normalization = "video", clip_percent: float = 0.0
) -> DepthRange:
    """The whole video's range, in one streaming pass.

    ``normalization="video"``: min and max over all frames, or with ``clip_percent > 0`` the
    ``clip_percent`` and ``100 - clip_percent`` percentiles (estimated from at most
    :data:`PERCENTILE_SAMPLE_BUDGET` evenly spaced values, so memory stays bounded).
    ``"none"``: the values already are disparity in ``[0, 1]`` and are used as they are.
    """
    if normalization not in ("video", "none"):
        raise InputError(f"normalization must be 'video' or 'none', got {normalization!r}")
    if not 0.0 <= clip_percent < 50.0:
        raise InputError(f"percentile clipping must be in [0, 50), got {clip_percent:g}")
    if normalization == "none":
        return DepthRange(0.0, 1.0)
    lo, hi = np.inf, -np.inf
    per_frame = max(1, PERCENTILE_SAMPLE_BUDGET // depth.num_frames)
    samples = []
    for frame in depth.frames():
        finite = frame[np.isfinite(frame)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
            if clip_percent > 0:
                samples.append(_sample(finite, per_frame))
    if not np.isfinite(lo):
        raise InputError(f"{depth.path}: the depth has no finite values")
    if clip_percent > 0:
        lo, hi = (float(v) for v in np.percentile(np.concatenate(samples), [clip_percent, 100 - clip_percent]))
    if hi <= lo:
        raise InputError(f"{depth.path}: the depth is constant ({lo:g}); there is nothing to map")
    return DepthRange(lo, hi)


def fit_to(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a depth frame to ``size`` = (H, W) bilinearly (a no-op when it already fits)."""
    if depth.shape == tuple(size):
        return depth
    return cv2.resize(np.ascontiguousarray(depth), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
