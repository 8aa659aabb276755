"""Result tables that grow a row at a time (evaluation results, per-clip reports)."""

from __future__ import annotations

import csv
from pathlib import Path


def append_csv_row(csv_path: Path, columns: list[str] | tuple[str, ...], row: dict) -> None:
    """One row, flushed at once, with the header when the file is new (or empty): results survive a kill."""
    new = not csv_path.exists() or csv_path.stat().st_size == 0
    with open(csv_path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
        handle.flush()
