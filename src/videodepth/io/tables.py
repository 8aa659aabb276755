"""Result tables that grow a row at a time (evaluation results, per-clip reports)."""

from __future__ import annotations

import csv
from pathlib import Path

from videodepth.io.atomic import atomic_file


def append_csv_row(csv_path: Path, columns: list[str] | tuple[str, ...], row: dict) -> None:
    """One row, flushed at once, with the header when the file is new (or empty): results survive a kill.

    A table written by a version with other columns is first rewritten under ``columns`` (its
    rows keep their values; a new column is empty in them), so that every row reads back by name."""
    new = not csv_path.exists() or csv_path.stat().st_size == 0
    if not new:
        _adopt_columns(csv_path, list(columns))
    with open(csv_path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
        handle.flush()


def _adopt_columns(csv_path: Path, columns: list[str]) -> None:
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames == columns:
            return
        rows = list(reader)
    with atomic_file(csv_path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
