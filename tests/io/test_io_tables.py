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


def test_old_columns_and_rows_longer_than_their_header_are_kept(tmp_path):
    """An old column the new version lacks stays (after the new ones); a row an older version
    appended with one more field than its header is read by position; a BOM is not a name."""
    path = tmp_path / "t.csv"
    path.write_text("\ufeffa,old\n1,x\n2,y,3\n")
    append_csv_row(path, ("a", "old_renamed", "c"), {"a": 9, "c": 8})
    header, rows = rows_of(path)
    assert header == ["a", "old_renamed", "c", "old"]
    assert rows == [
        {"a": "1", "old_renamed": "", "c": "", "old": "x"},
        {"a": "2", "old_renamed": "y", "c": "3", "old": ""},
        {"a": "9", "old_renamed": "", "c": "8", "old": ""},
    ]


def test_a_table_whose_header_holds_every_column_is_left_alone(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("b,a,extra\n1,2,3\n")
    inode = path.stat().st_ino
    append_csv_row(path, ("a", "b"), {"a": 5, "b": 6})
    assert path.stat().st_ino == inode
    assert rows_of(path) == (
        ["b", "a", "extra"],
        [{"b": "1", "a": "2", "extra": "3"}, {"b": "6", "a": "5", "extra": ""}],
    )
