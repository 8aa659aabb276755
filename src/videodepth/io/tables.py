"""Result tables that grow a row at a time (evaluation results, per-clip reports)."""

from __future__ import annotations

import csv
from pathlib import Path

from videodepth.io.atomic import atomic_file


def append_csv_row(csv_path: Path, columns: list[str] | tuple[str, ...], row: dict) -> None:
    """One row, flushed at once, with the header when the file is new (or empty): results survive a kill.

    A table written by a version with other columns is first rewritten under ``columns`` followed
    by its own columns that ``columns`` lacks, so no value is lost and every row reads back by name."""
    header = list(columns)
    new = not csv_path.exists() or csv_path.stat().st_size == 0
    if not new:
        header = _adopt_columns(csv_path, header)
    with open(csv_path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
        handle.flush()


def _adopt_columns(csv_path: Path, columns: list[str]) -> list[str]:
    """The header the table keeps; rewritten when ``columns`` are not all in it. A row longer
    than its header (appended by a version with more columns without a rewrite) is read by
    position under ``columns`` when it has exactly as many fields."""
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if all(column in header for column in columns):
            return header  # the common case reads one line, not the whole table
        lines = list(reader)
    merged = columns + [column for column in header if column not in columns]
    rows = []
    for values in lines:
        names = columns if len(values) == len(columns) and len(values) > len(header) else header
        rows.append(dict(zip(names, values, strict=False)))
    with atomic_file(csv_path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=merged)
        writer.writeheader()
        writer.writerows(rows)
    return merged
