"""How many CPU threads the compute libraries use.

torch's default (one thread per core) is right on an idle machine and badly wrong on a busy
one: its OpenMP workers spin while they wait for a core. On the 2-core machine this was measured
on (docs/PERFORMANCE.md), the demo took 12-16 s with two threads and 16 s with one when idle,
but 36 s with two and 17 s with one while one other process kept a core busy. So the default is
the number of cores that are idle when the job starts (sampled for a fifth of a second), at
least one; ``--threads`` overrides it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs from /proc/stat, or None where there is none."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields)  # idle + iowait


def idle_cores(sample_seconds: float = 0.2) -> float:
    """How many cores were idle over the next ``sample_seconds`` (all of them where unknown)."""
    before = _cpu_times()
    if before is None:
        return float(available_cores())
    time.sleep(sample_seconds)
    after = _cpu_times()
    if after is None or after[1] <= before[1]:
        return float(available_cores())
    idle_share = (after[0] - before[0]) / (after[1] - before[1])
    return idle_share * (os.cpu_count() or 1)


def default_threads() -> int:
    """The idle cores this process may use, at least one."""
    return max(1, min(available_cores(), round(idle_cores())))


def resolve_threads(count: int | None) -> int:
    """A command's ``--threads``: the number given, or :func:`default_threads` when none was."""
    return default_threads() if count is None else count


def set_threads(count: int | None) -> int:
    """Use ``count`` threads (None: :func:`default_threads`) for torch and OpenCV; return the number used."""
    import cv2
    import torch

    count = resolve_threads(count)
    torch.set_num_threads(count)
    cv2.setNumThreads(count)
    return count
