"""Per-frame sparse observations, kept on disk so that a long video's points do not grow memory.

Each frame observes a few hundred to a thousand points, stored as rows of
(u, v, depth, error px, angle deg, track length) with u, v normalised to [0, 1]. At 24 kB a frame
that is 72 MB for 3,000 frames, and every pass over them (alignment, checks) would add copies, so
a long video's rows live in an unlinked temporary file and are read one frame at a time.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

import numpy as np

#: columns of a frame's observation array
OBS_U, OBS_V, OBS_DEPTH, OBS_ERROR, OBS_ANGLE, OBS_TRACK = range(6)
OBS_COLUMNS = 6
_ROW_BYTES = OBS_COLUMNS * 4  # float32
#: video-wide statistics (alignment, checks) pool at most about this many observations
MAX_POOLED = 200_000


class ObservationStore(Sequence[np.ndarray]):
    """An append-only sequence of per-frame [N, 6] float32 arrays in an anonymous temporary file
    (removed by the system when the store is closed or collected, even after a crash).

    Reading a frame returns a fresh array; writing to it does not change the store."""

    def __init__(self, arrays: Iterable[np.ndarray] = ()) -> None:
        # unlinked at once: the system removes it when the store is closed or collected
        self._file: BinaryIO = tempfile.TemporaryFile(prefix="videodepth-observations-")  # noqa: SIM115
        self._starts: list[int] = [0]  # row offsets: frame i is rows [starts[i], starts[i + 1])
        self.extend(arrays)

    def append(self, observations: np.ndarray) -> None:
        rows = np.ascontiguousarray(observations, dtype=np.float32)
        if rows.size and (rows.ndim != 2 or rows.shape[1] != OBS_COLUMNS):
            raise ValueError(f"observations must be [N, {OBS_COLUMNS}], got {rows.shape}")
        # positioned writes and reads: no shared file offset, so concurrent readers cannot interfere
        os.pwrite(self._file.fileno(), rows.tobytes(), self._starts[-1] * _ROW_BYTES)
        self._starts.append(self._starts[-1] + len(rows.reshape(-1, OBS_COLUMNS)))

    def extend(self, arrays: Iterable[np.ndarray]) -> None:
        for observations in arrays:
            self.append(observations)

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} of {len(self)}")
        start, stop = self._starts[index], self._starts[index + 1]
        data = os.pread(self._file.fileno(), (stop - start) * _ROW_BYTES, start * _ROW_BYTES)
        return np.frombuffer(data, np.float32).reshape(-1, OBS_COLUMNS).copy()

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    def counts(self) -> np.ndarray:
        return np.diff(np.asarray(self._starts, np.int64))

    def close(self) -> None:
        self._file.close()


def frame_counts(observations: Sequence[np.ndarray]) -> np.ndarray:
    """Observations per frame, without reading a store's rows."""
    if isinstance(observations, ObservationStore):
        return observations.counts()
    return np.array([len(o) for o in observations], np.int64)


def pooling_stride(total: int) -> int:
    """Every n-th observation of each frame to pool, so that video-wide fits stay bounded in memory
    (1, all of them, up to ``MAX_POOLED``: 200 frames of 1,000 points)."""
    return max(1, -(-total // MAX_POOLED))


def write_observations(archive: zipfile.ZipFile, name: str, observations: Sequence[np.ndarray]) -> None:
    """Write all frames' rows as one [N, 6] float32 ``.npy`` member of an open zip (an ``.npz``),
    one frame at a time."""
    total = int(frame_counts(observations).sum())
    with archive.open(name, "w", force_zip64=True) as member:
        header = {"descr": "<f4", "fortran_order": False, "shape": (total, OBS_COLUMNS)}
        np.lib.format.write_array_header_1_0(member, header)
        for frame in observations:
            member.write(np.ascontiguousarray(frame, dtype="<f4").tobytes())


def read_observations(archive: zipfile.ZipFile, name: str, counts: np.ndarray) -> ObservationStore:
    """The frames written by :func:`write_observations`, streamed into a store."""
    store = ObservationStore()
    with archive.open(name) as member:
        major, _ = np.lib.format.read_magic(member)
        read_header = (
            np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read_header(member)
        if dtype != np.dtype("<f4") or fortran_order or shape != (int(np.sum(counts)), OBS_COLUMNS):
            raise ValueError(
                f"{name}: expected float32 [{int(np.sum(counts))}, {OBS_COLUMNS}], got {dtype} {shape}"
            )
        for count in counts:
            data = member.read(int(count) * _ROW_BYTES)
            store.append(np.frombuffer(data, "<f4").reshape(-1, OBS_COLUMNS))
    return store
