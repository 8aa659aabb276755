"""The eval runner on a tiny dataset, and the bench command's output format."""

from __future__ import annotations

import csv
import dataclasses

import pytest

from videodepth.cli import main
from videodepth.data.readers import write_rgbd_folder
from videodepth.eval.bench import COLUMNS, Measurement, markdown_table, write_csv
from videodepth.synth.render import render_clip


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    for seed, family in ((1, "tabletop"), (2, "indoor")):
        write_rgbd_folder(
            render_clip(family, seed, num_frames=6, height=64, width=128), root / f"{family}_{seed}"
        )
    return root


def test_eval_writes_rows_and_skips_finished_videos(tiny_models, tiny_dataset, tmp_path, capsys):
    args = [
        "eval",
        str(tiny_dataset),
        "--model",
        str(tiny_models["ours"]),
        "--out",
        str(tmp_path),
        "--steps",
        "1",
        "--window",
        "4",
        "--overlap",
        "1",
        "--max-res",
        "128",
        "--no-progress",
        "--label",
        "t",
    ]
    assert main(args) == 0
    with open(tmp_path / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["sequence"] for r in rows) == ["indoor_2", "tabletop_1"]
    for row in rows:
        assert 0 <= float(row["abs_rel"]) < 10 and 0 <= float(row["delta1"]) <= 1
        assert float(row["tae"]) >= 0 and float(row["flicker"]) >= 0 and int(row["frames"]) == 6
    summary = (tmp_path / "summary.md").read_text()
    assert "| t |" in summary and "AbsRel" in summary
    capsys.readouterr()
    assert main(args) == 0  # second run: nothing new to do
    with open(tmp_path / "results.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 2


def test_eval_on_an_empty_folder_is_a_clear_error(tiny_models, tmp_path, capsys):
    assert main(["eval", str(tmp_path), "--model", str(tiny_models["ours"]), "--no-progress"]) != 0
    assert "no sequences found" in capsys.readouterr().err


def test_bench_table_and_csv(tmp_path):
    m = Measurement(
        model="tiny",
        strategy="depthcrafter",
        height=64,
        width=128,
        frames=8,
        steps=1,
        device="cpu",
        seconds=2.0,
        encode_ms=1.5,
        denoise_ms=20.25,
        decode_ms=3.0,
        tracking_ms=0.0,
        fusion_ms=0.0,
        fps=4.0,
        peak_rss_mib=500.0,
        peak_vram_mib=None,
    )
    table = markdown_table([m]).splitlines()
    assert table[0] == "| " + " | ".join(COLUMNS) + " |"
    assert (
        table[2]
        == "| tiny | depthcrafter | 64 | 128 | 8 | 1 | cpu | 1.5 | 20.2 | 3.0 | 0.0 | 0.0 | 4.0 | 2.0 | 500.0 | None |"
    )
    slow = markdown_table([dataclasses.replace(m, fps=0.0256, encode_ms=10329.81)]).splitlines()[2]
    assert "| 10329.8 |" in slow and "| 0.026 |" in slow  # small rates keep two significant digits
    write_csv([m], tmp_path / "b.csv")
    with open(tmp_path / "b.csv", newline="") as handle:
        assert next(csv.DictReader(handle))["denoise_ms"] == "20.25"


def test_bench_times_tracking_and_fusion_with_geometry(capsys):
    assert (
        main(
            ["bench", "--model", "tiny", "--sizes", "64x128", "--lengths", "6", "--steps", "1", "--geometry"]
        )
        == 0
    )
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny"))
    tracking_ms, fusion_ms = (float(cell) for cell in row.split("|")[11:13])
    assert tracking_ms > 0 and fusion_ms > 0


def test_bench_command_measures_a_real_run(capsys):
    assert main(["bench", "--model", "tiny", "--sizes", "64x128", "--lengths", "4", "--steps", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny")]
    assert len(rows) == 1 and "| 64 | 128 | 4 | 1 | cpu |" in rows[0]
