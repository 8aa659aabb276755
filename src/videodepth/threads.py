"""How many CPU threads the compute libraries use.

torch's default (one thread per core) is right on an idle machine and badly wrong on a busy
one: its OpenMP workers spin while they wait for a core, so on the 2-core machine this was
measured on, a loaded run went several times slower than with one thread (docs/PERFORMANCE.md,
"Threads"). ``--threads`` sets it; the default is chosen by that measurement.
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    return available_cores()


def set_threads(count: int | None) -> int:
    """Use ``count`` threads (None: the default) for torch and OpenCV; return the number used."""
    import cv2
    import torch

    count = default_threads() if count is None else count
    torch.set_num_threads(count)
    cv2.setNumThreads(count)
    return count
