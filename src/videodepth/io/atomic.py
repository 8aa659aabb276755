"""Write outputs so that a crash never leaves a half-written file under its final name.

Everything is first written to a hidden sibling (``.name.partial-<pid><suffix>``) in the same
folder, so the final ``os.replace`` is a rename on one filesystem. The real suffix is kept at the
end because encoders (PyAV, OpenCV, OpenEXR) choose the format from it. The pid in the name lets
a later run tell what a killed one left behind from what a running one is writing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from videodepth.errors import OutputError


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def ensure_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) if needed and check a file can be written in it."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create output folder {folder}: {_reason(error)}") from None
    if not folder.is_dir():
        raise OutputError(f"output path {folder} exists and is not a folder")
    # A real write is the only honest test: os.access says yes to root on read-only mounts.
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise OutputError(f"cannot write to output folder {folder}: {_reason(error)}") from None
    return folder


def partial_name(path: Path, tag: str = "partial") -> Path:
    """Hidden sibling of ``path`` that keeps its suffix, e.g. ``.clip.partial-123.mp4``."""
    return path.with_name(f".{path.stem}.{tag}-{os.getpid()}{path.suffix}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but is not ours to signal
        return True
    return True


def remove_stale_partials(path: Path) -> list[Path]:
    """Remove the temporary siblings of ``path`` that runs killed before they finished left
    behind (those of a process still running are kept). Returns what was removed."""
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.(?:partial|old)-(\d+){re.escape(path.suffix)}")
    removed = []
    with contextlib.suppress(OSError):
        for candidate in path.parent.iterdir():
            match = pattern.fullmatch(candidate.name)
            if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
                _remove(candidate)
                removed.append(candidate)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class PendingFile:
    """A file written under a temporary name and renamed onto ``path`` by :meth:`commit`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        ensure_writable_dir(self.path.parent)
        remove_stale_partials(self.path)
        self.tmp = partial_name(self.path)
        _remove(self.tmp)

    def commit(self) -> Path:
        try:
            os.replace(self.tmp, self.path)
        except OSError as error:
            self.discard()
            raise OutputError(f"cannot write {self.path}: {_reason(error)}") from None
        return self.path

    def discard(self) -> None:
        _remove(self.tmp)


class PendingDir:
    """A folder filled under a temporary name and moved onto ``path`` by :meth:`commit`.

    An existing ``path`` is replaced: it is first moved aside, so at every instant ``path`` is
    either the complete old folder or the complete new one.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        ensure_writable_dir(self.path.parent)
        remove_stale_partials(self.path)
        self.tmp = partial_name(self.path)
        _remove(self.tmp)
        try:
            self.tmp.mkdir()
        except OSError as error:
            raise OutputError(f"cannot create {self.tmp}: {_reason(error)}") from None

    def commit(self) -> Path:
        old = partial_name(self.path, "old")
        try:
            if self.path.exists() or self.path.is_symlink():
                _remove(old)
                os.replace(self.path, old)
            os.replace(self.tmp, self.path)
        except OSError as error:
            self.discard()
            raise OutputError(f"cannot write {self.path}: {_reason(error)}") from None
        _remove(old)
        return self.path

    def discard(self) -> None:
        _remove(self.tmp)


@contextlib.contextmanager
def _committed_on_success(pending: PendingFile | PendingDir) -> Iterator[Path]:
    try:
        yield pending.tmp
    except BaseException:
        pending.discard()
        raise
    pending.commit()


def atomic_file(path: str | os.PathLike[str]) -> contextlib.AbstractContextManager[Path]:
    """Yield a temporary path; on success it replaces ``path``, on an exception it is removed."""
    return _committed_on_success(PendingFile(path))


def atomic_dir(path: str | os.PathLike[str]) -> contextlib.AbstractContextManager[Path]:
    """Yield a fresh temporary folder; on success it replaces ``path``, on an exception it is removed."""
    return _committed_on_success(PendingDir(path))
