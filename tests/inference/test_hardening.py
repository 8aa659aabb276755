"""What a careless or hostile run must not do: overwrite, leave files behind, mislead about a
resume, start work it cannot finish, or load torch just to report a bad argument."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import moving_frames, write_test_video
from tests.inference.test_run_command import interrupt_after_checkpoints, run
from videodepth.inference import commands
from videodepth.inference.options import InputOptions, OutputOptions, check_input, output_names
from videodepth.inference.runner import JobReport
from videodepth.io import read_depth_npz


def test_inputs_with_the_same_name_get_distinct_outputs(tiny_models, tiny_video, tmp_path, capsys):
    first, second = tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4"
    first.parent.mkdir()
    second.parent.mkdir()
    shutil.copy(tiny_video, first)
    write_test_video(second, moving_frames(21, 72, 136, seed=5))
    out = tmp_path / "out"
    assert (
        run(
            str(first),
            str(second),
            str(first),
            "--model",
            str(tiny_models["ours"]),
            "--out",
            str(out),
            "--save",
            "npz",
        )
        == 0
    )
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["a_clip.npz", "b_clip.npz"]
    assert not np.array_equal(read_depth_npz(out / "a_clip.npz"), read_depth_npz(out / "b_clip.npz"))
    assert f"wrote {out / 'a_clip.npz'}" in captured.out and f"wrote {out / 'b_clip.npz'}" in captured.out
    assert "given more than once" in captured.err and "are named b_clip" in captured.err


def test_output_names_are_distinct_and_predictable(tmp_path):
    for folder in ("x/a", "y/a", "z"):
        (tmp_path / folder).mkdir(parents=True)
    paths = [
        tmp_path / "x/a/clip.mp4",
        tmp_path / "y/a/clip.mp4",
        tmp_path / "z/clip.mp4",
        tmp_path / "z/other.mp4",
    ]
    for path in paths:
        path.touch()
    assert output_names(paths) == ["x_a_clip", "y_a_clip", "z_clip", "other"]
    assert output_names([paths[3], paths[3]]) == ["other", "other_2"]


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_removes_what_killed_runs_left_behind(tiny_models, tiny_video, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    gone = dead_pid()
    stale = [
        out / f".clip.partial-{gone}.raw",
        out / f".clip.partial-{gone}.npz",
        out / f".clip_depth.partial-{gone}.mp4",
    ]
    for path in stale:
        path.write_bytes(b"x" * 1000)
    (out / f".clip_png16.partial-{gone}").mkdir()
    (out / f".clip_png16.partial-{gone}" / "000000.png").write_bytes(b"x")
    running = out / f".clip.partial-{os.getppid()}.raw"  # a live process's file is not ours to remove
    running.write_bytes(b"x")
    unrelated = out / f".clip2.partial-{gone}.raw"
    unrelated.write_bytes(b"x")
    assert (
        run(
            str(tiny_video),
            "--model",
            str(tiny_models["ours"]),
            "--out",
            str(out),
            "--save",
            "mp4,npz,png16",
            "--process-length",
            "4",
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [running.name, unrelated.name, "clip.npz", "clip_depth.mp4", "clip_png16"]
    )


def test_a_resumed_run_says_so_and_counts_only_its_own_frames(
    tiny_models, tiny_video, tmp_path, monkeypatch, capsys
):
    common = (str(tiny_video), "--model", str(tiny_models["ours"]), "--save", "npz", "--out", str(tmp_path))
    interrupt_after_checkpoints(monkeypatch, 2)
    assert run(*common) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert run(*common, "--resume") == 0
    summary = capsys.readouterr().out
    start = int(summary.split("resumed from frame ")[1].split(":")[0])
    assert 0 < start < 21 and f"{21 - start} of 21 frames" in summary


def test_speed_of_a_resumed_run_counts_processed_frames():
    report = JobReport(
        video=Path("clip.mp4"),
        outputs=[],
        num_frames=100,
        size=(64, 128),
        seconds=10.0,
        stage_seconds={"denoise": 2.0},
        resumed_from_frame=60,
    )
    line = report.summary()
    assert "resumed from frame 60: 40 of 100 frames" in line and "(4.00 frames/s)" in line
    assert "denoise 50.0" in line  # 2 s over the 40 frames this run processed
    fresh = JobReport(video=Path("clip.mp4"), outputs=[], num_frames=100, size=(64, 128), seconds=10.0)
    assert "resumed" not in fresh.summary() and "(10.00 frames/s)" in fresh.summary()
    # a resume after the model's pass had finished: no rate of zero frames per second
    done_before = JobReport(video=Path("clip.mp4"), outputs=[], num_frames=100, size=(64, 128), seconds=10.0,
                            resumed_from_frame=100)  # fmt: skip
    assert "resumed: all 100 frames were predicted before" in done_before.summary()
    assert "(no frame predicted now)" in done_before.summary()


@pytest.fixture
def no_model_loading(monkeypatch):
    monkeypatch.setattr(
        commands, "pipeline_from_args", lambda args: pytest.fail("model loaded before the check")
    )


@pytest.mark.parametrize(
    ("extra", "option"),
    [(["--max-frames", "20"], "--max-frames"), (["--max-output-side", "100"], "--output-size processed")],
)
def test_limits_are_checked_from_the_header_before_the_model(
    extra, option, tiny_video, tmp_path, capsys, no_model_loading
):
    assert run(str(tiny_video), "--out", str(tmp_path), *extra) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and option in error[0], error
    assert not list(tmp_path.iterdir())


def test_limits_are_met_by_processing_less(tiny_video):
    check_input(tiny_video, InputOptions(max_frames=20, process_length=20), OutputOptions())
    check_input(tiny_video, InputOptions(), OutputOptions(max_side=128, size="processed"))


def test_a_huge_image_is_refused_before_any_work(tmp_path, capsys, no_model_loading):
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "0001.png"), np.zeros((16, 9000, 3), np.uint8))
    assert run(str(folder), "--out", str(tmp_path / "out")) == 2
    assert "9000x16, more than 8192 px on a side" in capsys.readouterr().err


def test_npz_is_compressed_and_float16_on_request(tiny_models, tiny_video, tmp_path):
    common = (str(tiny_video), "--model", str(tiny_models["ours"]), "--save", "npz")
    assert run(*common, "--out", str(tmp_path / "f32")) == 0
    assert run(*common, "--out", str(tmp_path / "f16"), "--npz-float16") == 0
    full, half = tmp_path / "f32" / "clip.npz", tmp_path / "f16" / "clip.npz"
    with zipfile.ZipFile(full) as archive:
        assert archive.getinfo("depth.npy").compress_type == zipfile.ZIP_DEFLATED
    with np.load(half) as archive:
        assert archive["depth"].dtype == np.float16
    assert np.abs(read_depth_npz(half) - read_depth_npz(full)).max() <= 5e-4
    assert half.stat().st_size < 0.6 * full.stat().st_size


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["run", "clip.mp4", "--steps", "0"],
        ["run", "/no/such/clip.mp4"],
        ["eval", "--help"],
        ["train", "--help"],
    ],
)
def test_argument_errors_and_version_do_not_import_torch(argv):
    code = (
        "import sys\nfrom videodepth.cli import main\n"
        f"try:\n    code = main({argv!r})\nexcept SystemExit as exit_info:\n    code = exit_info.code\n"
        "print('torch' in sys.modules, 'diffusers' in sys.modules, code)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    torch_loaded, diffusers_loaded, exit_code = result.stdout.splitlines()[-1].split()
    assert (torch_loaded, diffusers_loaded) == ("False", "False"), (argv, result.stdout)
    assert exit_code == ("0" if "--version" in argv or "--help" in argv else "2")
