from __future__ import annotations

import csv

from videodepth.io.tables import append_csv_row


def rows_of(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def test_rows_are_appended_under_one_header(tmp_path):
    path = tmp_path / "t.csv"
    append_csv_row(path, ("a", "b"), {"a": 1, "b": 2, "ignored": 3})
    append_csv_row(path, ("a", "b"), {"a": 4})
    assert rows_of(path) == (["a", "b"], [{"a": "1", "b": "2"}, {"a": "4", "b": ""}])


def test_a_table_of_an_older_version_takes_the_new_columns_and_keeps_its_rows(tmp_path):
    """A row with a column the file's header lacks would otherwise be read back without it."""
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    append_csv_row(path, ("a", "b", "c"), {"a": 5, "b": 6, "c": 7})
    assert rows_of(path) == (["a", "b", "c"], [{"a": "1", "b": "2", "c": ""}, {"a": "5", "b": "6", "c": "7"}])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]  # no temporary file left
