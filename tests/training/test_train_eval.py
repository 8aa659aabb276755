"""`videodepth train-eval`: SynthBench metrics of a model, and the blank-input control."""

from __future__ import annotations

import json

from videodepth.cli import main
from videodepth.data.readers import write_rgbd_folder
from videodepth.synth.render import render_clip


def test_train_eval_reports_metrics_and_the_blank_input_control(tiny_models, tmp_path, capsys):
    write_rgbd_folder(
        render_clip("tabletop", 3, num_frames=4, height=64, width=64), tmp_path / "bench" / "tabletop_3"
    )
    args = [
        "train-eval",
        str(tiny_models["ours"]),
        "--synthbench",
        str(tmp_path / "bench"),
        "--clips",
        "1",
        "--frames",
        "4",
        "--steps",
        "1",
        "--window",
        "4",
        "--overlap",
        "1",
    ]
    assert main(args) == 0
    real = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main([*args, "--blank-input"]) == 0
    blank = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert blank["blank_input"] is True and "blank_input" not in real
    for scores in (real, blank):
        assert 0 <= scores["abs_rel"] < 10 and 0 <= scores["delta1"] <= 1 and scores["tae"] >= 0
    # Even a random network responds to its input: the grey video must give another prediction.
    assert blank["abs_rel"] != real["abs_rel"]


def test_train_eval_refuses_a_device_this_build_lacks(tiny_models, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["train-eval", str(tiny_models["ours"]), "--synthbench", str(tmp_path), "--device", "cuda"])
    assert code != 0 and "sees no CUDA GPU" in capsys.readouterr().err
