"""``videodepth run`` end to end on tiny models: every writer, resume, and every bad input."""

from __future__ import annotations

import json
import shutil

import av
import numpy as np
import pytest

from videodepth.cli import main
from videodepth.inference import runner
from videodepth.inference.pipeline import VideoDepthPipeline
from videodepth.io import read_depth_npz, read_exr_folder, read_png16_folder


def run(*args: str) -> int:
    return main(["run", "--no-progress", "--steps", "2", "--window", "8", "--overlap", "3", *args])


def test_every_output_kind(tiny_models, tiny_video, tmp_path, capsys):
    assert (
        run(
            str(tiny_video),
            "--model",
            str(tiny_models["ours"]),
            "--out",
            str(tmp_path),
            "--save",
            "mp4,sbs,npz,png16,exr",
        )
        == 0
    )
    summary = capsys.readouterr().out
    assert "21 frames at 128x64" in summary and "ms/frame encode / denoise / decode" in summary
    depth = read_depth_npz(tmp_path / "clip.npz")
    assert depth.shape == (21, 72, 136) and depth.dtype == np.float32  # original size by default
    assert 0.0 <= depth.min() < 0.1 and 0.9 < depth.max() <= 1.0  # normalised, then resized
    assert np.abs(read_png16_folder(tmp_path / "clip_png16") - depth).max() <= 1 / 65535 + 1e-6
    assert np.array_equal(read_exr_folder(tmp_path / "clip_exr"), depth)
    for name, width in (("clip_depth.mp4", 136), ("clip_sbs.mp4", 272)):
        with av.open(str(tmp_path / name)) as container:
            frames = list(container.decode(video=0))
        assert len(frames) == 21 and frames[0].width == width
    assert not (tmp_path / runner.WORK_FOLDER).exists()


def test_strategies_and_processed_size(tiny_models, tiny_video, tmp_path):
    for strategy in ("depthcrafter", "chronodepth", "replacement", "naive", "single"):
        out = tmp_path / strategy
        assert (
            run(
                str(tiny_video),
                "--model",
                str(tiny_models["ours"]),
                "--out",
                str(out),
                "--save",
                "npz",
                "--strategy",
                strategy,
                "--context",
                "4",
                "--output-size",
                "processed",
            )
            == 0
        )
        depth = read_depth_npz(out / "clip.npz")
        assert depth.shape == (21, 64, 128)
        assert depth.min() == 0.0 and depth.max() == 1.0  # one normalisation for the whole video


def interrupt_after_checkpoints(monkeypatch, count: int) -> None:
    """Make the next run stop (as on Ctrl-C) right after its ``count``-th checkpoint."""
    original = VideoDepthPipeline.run

    def interrupted(*args, checkpoint=None, **kwargs):
        saved = []

        def save_then_maybe_stop(state):
            checkpoint(state)
            saved.append(state)
            if len(saved) == count:
                raise KeyboardInterrupt

        return original(*args, checkpoint=save_then_maybe_stop, **kwargs)

    monkeypatch.setattr(VideoDepthPipeline, "run", interrupted)


def test_more_steps_than_the_model_was_measured_to_benefit_from_are_warned_about(
    tiny_models, tiny_video, tmp_path, capsys
):
    model = tmp_path / "model"
    shutil.copytree(tiny_models["ours"], model)
    config = json.loads((model / "videodepth.json").read_text())
    (model / "videodepth.json").write_text(json.dumps({**config, "max_helpful_steps": 1}))
    args = (str(tiny_video), "--model", str(model), "--save", "npz", "--process-length", "4")
    assert run(*args, "--out", str(tmp_path / "two"), "--steps", "2") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: 2 steps asked for, but this model scored worse with more than 1 "
        "(max_helpful_steps in its videodepth.json)"
    ]
    assert run(*args, "--out", str(tmp_path / "one"), "--steps", "1") == 0
    assert "warning:" not in capsys.readouterr().err


def test_interrupted_run_resumes_to_the_same_result(tiny_models, tiny_video, tmp_path, monkeypatch, capsys):
    common = (str(tiny_video), "--model", str(tiny_models["ours"]), "--save", "npz")
    assert run(*common, "--out", str(tmp_path / "whole")) == 0
    expected = read_depth_npz(tmp_path / "whole" / "clip.npz")

    interrupt_after_checkpoints(monkeypatch, 2)
    assert run(*common, "--out", str(tmp_path / "parts")) == 130
    assert not (tmp_path / "parts" / "clip.npz").exists()  # nothing half-written looks complete
    monkeypatch.undo()
    capsys.readouterr()
    assert run(*common, "--out", str(tmp_path / "parts"), "--resume") == 0
    assert np.array_equal(read_depth_npz(tmp_path / "parts" / "clip.npz"), expected)


def test_resume_refuses_other_settings(tiny_models, tiny_video, tmp_path, monkeypatch, capsys):
    common = (str(tiny_video), "--model", str(tiny_models["ours"]), "--save", "npz", "--out", str(tmp_path))
    interrupt_after_checkpoints(monkeypatch, 1)
    assert run(*common) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert run(*common, "--resume", "--seed", "3") == 2
    assert "other settings" in capsys.readouterr().err


def truncated_copy(source, target):
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    return target


def empty_video(path):
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=24)
    stream.width, stream.height = 64, 64
    container.close()
    return path


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "not-a-video",
        "zero-frames",
        "truncated",
        "output-is-a-file",
        "model-missing-part",
        "model-absent",
        "max-res-too-small",
        "no-input",
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(case, tiny_models, tiny_video, tmp_path, capsys):
    video, model, out, extra = str(tiny_video), str(tiny_models["ours"]), tmp_path / "out", []
    if case == "missing":
        video = str(tmp_path / "nope.mp4")
    elif case == "not-a-video":
        (tmp_path / "notes.mp4").write_text("hello")
        video = str(tmp_path / "notes.mp4")
    elif case == "zero-frames":
        video = str(empty_video(tmp_path / "empty.mp4"))
    elif case == "truncated":
        video = str(truncated_copy(tiny_video, tmp_path / "cut.mp4"))
    elif case == "output-is-a-file":
        out.write_text("occupied")
    elif case == "model-missing-part":
        model = shutil.copytree(tiny_models["ours"], tmp_path / "model")
        shutil.rmtree(model / "vae")
    elif case == "model-absent":
        model = str(tmp_path / "no-model")
    elif case == "max-res-too-small":
        extra = ["--max-res", "32"]
    args = ["--model", str(model), "--out", str(out), *extra]
    try:
        code = run(*args) if case == "no-input" else run(video, *args)
    except SystemExit as exit_info:  # refused while parsing the options
        code = exit_info.code
    error = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(error) == 1 and error[0].startswith(("videodepth: error:", "videodepth run: error:")), error
    if out.is_dir():
        leftovers = [p for p in out.rglob("*") if p.is_file()]
        assert not [p for p in leftovers if runner.WORK_FOLDER not in p.parts], leftovers


def test_several_videos_continue_past_a_bad_one(tiny_models, tiny_video, tmp_path, capsys):
    code = run(
        str(tmp_path / "missing.mp4"),
        str(tiny_video),
        "--model",
        str(tiny_models["ours"]),
        "--out",
        str(tmp_path),
        "--save",
        "npz",
    )
    assert code == 1
    assert (tmp_path / "clip.npz").exists()
    assert "missing.mp4" in capsys.readouterr().err


def test_the_built_in_model_says_what_it_is(tiny_video, tmp_path, capsys):
    assert run(str(tiny_video), "--out", str(tmp_path), "--save", "npz", "--steps", "1") == 0
    err = capsys.readouterr().err
    assert "built-in videodepth-small model" in err and "--model" in err
    assert (tmp_path / "clip.npz").exists()
