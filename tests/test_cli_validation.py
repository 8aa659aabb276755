"""Every numeric option of every subcommand refuses bad values at parse time: one line, exit 2.

The table is the parser itself, walked subcommand by subcommand, so an option added later is
covered without touching this file.
"""

from __future__ import annotations

import argparse
import math

import pytest

from videodepth.cli import build_parser, main
from videodepth.inference.settings import RunSettings


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, (*path, name))
    if path:
        yield path, parser


def _numeric_options():
    for path, parser in _subcommands(build_parser()):
        for action in parser._actions:
            if action.option_strings and hasattr(action.type, "minimum"):
                yield path, action.option_strings[-1], action.type.minimum


NUMERIC_OPTIONS = sorted(set(_numeric_options()))


def _bad_values(minimum) -> list[str]:
    values = ["abc", "nan", "inf"]
    if minimum is not None:
        below = minimum - 1 if float(minimum).is_integer() else minimum - 0.5
        values.append(str(int(below)) if isinstance(minimum, int) else str(below))
    return values


def test_the_table_covers_every_subcommand_with_numbers():
    covered = {path[0] for path, _, _ in NUMERIC_OPTIONS}
    assert {"run", "data", "train", "eval", "bench", "fx", "serve"} <= covered
    assert len(NUMERIC_OPTIONS) > 60


@pytest.mark.parametrize(("path", "option", "minimum"), NUMERIC_OPTIONS, ids=lambda v: str(v))
def test_bad_value_is_one_line_and_exit_2(path, option, minimum, capsys):
    for value in _bad_values(minimum):
        with pytest.raises(SystemExit) as exit_info:
            main([*path, f"{option}={value}"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert option in lines[0] and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "clip.mp4", "--steps", "0"], "--steps: must be an integer >= 1, got 0"),
        (["run", "clip.mp4", "--steps", "-1"], "--steps: must be an integer >= 1, got -1"),
        (["run", "clip.mp4", "--decode-chunk-size", "0"], "--decode-chunk-size: must be an integer >= 1"),
        (["run", "clip.mp4", "--max-res", "0"], "--max-res: must be an integer >= 64"),
        (["run", "clip.mp4", "--guidance", "-1"], "--guidance: must be a number >= 0"),
        (["run", "clip.mp4", "--sigma-epsilon", "nan"], "--sigma-epsilon: expected a finite number"),
        (["run", "clip.mp4", "--target-fps", "-3"], "--target-fps: must be a number > 0 or -1"),
        (
            ["run", "clip.mp4", "--process-length", "0"],
            "--process-length: must be an integer >= 1 or -1 (all)",
        ),
        (["run", "clip.mp4", "--device", "gpu"], "--device: choose auto, cpu, cuda, cuda:N or mps"),
        (["data", "render", "--out", "x", "--clips", "-1"], "--clips: must be an integer >= 1, got -1"),
    ],
)
def test_issue_rows(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and expected in err


def test_special_values_keep_their_meaning():
    args = build_parser().parse_args(["run", "clip.mp4", "--target-fps", "-1", "--process-length", "-1"])
    assert args.target_fps is None and args.process_length == -1


def test_mps_without_an_apple_gpu_is_one_line_before_any_model(capsys, monkeypatch):
    import torch

    from videodepth.models import default

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(
        default, "load_default_model", lambda: pytest.fail("model loaded before the device check")
    )
    assert main(["run", "--demo", "--device", "mps", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "videodepth: error: --device mps asked for, but this machine has no Apple GPU (MPS)"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("steps", 0),
        ("steps", -1),
        ("decode_chunk_size", 0),
        ("window", 0),
        ("overlap", -1),
        ("guidance", -1.0),
        ("guidance", math.nan),
        ("sigma_epsilon", math.nan),
        ("strategy", "nope"),
        ("noise", "nope"),
        ("steps", 2.5),
    ],
)
def test_python_settings_object_validates_too(field, value):
    from videodepth.errors import InputError

    with pytest.raises(InputError, match=field.replace("_", "-")):
        RunSettings(**{field: value})
