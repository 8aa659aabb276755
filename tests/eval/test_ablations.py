"""`videodepth ablations` on a tiny dataset: every configuration scored, figures drawn, the report
written between its markers (the hand-written text around them kept), and a rerun resumable."""

from __future__ import annotations

import csv

import pytest

from videodepth.cli import main
from videodepth.data.readers import write_rgbd_folder
from videodepth.eval.ablations import REPORT_BEGIN, REPORT_END, ablations, write_report
from videodepth.models.bundle import DepthModel
from videodepth.synth.render import render_clip


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablate") / "tinybench"
    write_rgbd_folder(render_clip("tabletop", 5, num_frames=11, height=64, width=64), root / "tabletop_5")
    return root


def test_the_study_covers_the_papers_ablations():
    study = ablations(16)
    groups = {a.group for a in study}
    assert groups == {"strategy", "window", "steps", "single frame"}
    labels = [a.label for a in study]
    assert len(labels) == len(set(labels))
    assert {
        "naive",
        "replacement",
        "depthcrafter (full)",
        "chronodepth, context 8",
        "depthcrafter, window 32",
        "1 steps",
        "each frame alone (NYU-style)",
    } <= set(labels)


def test_write_report_keeps_the_text_around_the_markers(tmp_path):
    report = tmp_path / "RESULTS.md"
    report.write_text(
        f"# Results\n\nintro\n\n{REPORT_BEGIN}\nold tables\n{REPORT_END}\n\n## Discussion\nours\n"
    )
    write_report(report, "new tables\n")
    text = report.read_text()
    assert "intro" in text and "## Discussion\nours" in text
    assert "new tables" in text and "old tables" not in text
    write_report(tmp_path / "fresh.md", "only tables\n")
    assert (tmp_path / "fresh.md").read_text() == f"{REPORT_BEGIN}\nonly tables\n{REPORT_END}\n"


def test_ablations_command_scores_every_configuration_and_draws_figures(
    tiny_models, tiny_dataset, tmp_path, capsys
):
    report = tmp_path / "docs" / "RESULTS.md"
    report.parent.mkdir()
    report.write_text(f"# Results\n\n{REPORT_BEGIN}\n{REPORT_END}\n\nkept\n")
    args = [
        "ablations",
        str(tiny_dataset),
        "--model",
        str(tiny_models["ours"]),
        "--out",
        str(tmp_path / "runs"),
        "--max-res",
        "64",
        "--report",
        str(report),
    ]
    assert main(args) == 0
    with open(tmp_path / "runs" / "tinybench" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    window = DepthModel.from_pretrained(tiny_models["ours"]).config.window
    assert sorted(r["label"] for r in rows) == sorted(a.label for a in ablations(window))
    single = next(r for r in rows if r["label"] == "each frame alone (NYU-style)")
    assert single["tae"] == "nan" and int(single["frames"]) == 2  # frames 0 and 10
    text = report.read_text()
    assert text.endswith("kept\n") and "### tinybench" in text and "| depthcrafter (full) | 1 |" in text
    for figure in ("tinybench_temporal_profile.png", "tinybench_abs_rel_per_frame.png"):
        assert (report.parent / "images" / "results" / figure).stat().st_size > 1000
        assert f"](images/results/{figure})" in text
    capsys.readouterr()
    assert main(args) == 0  # everything is done: a rerun only rewrites the report
    with open(tmp_path / "runs" / "tinybench" / "results.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(rows)
