"""Helpers shared by the geometry tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def geometry_run(video: Path, out: Path, *extra: str) -> list[str]:
    """The arguments of ``videodepth run VIDEO --geometry`` at the tests' small size."""
    return ["run", str(video), "--no-progress", "--max-res", "224", "--geometry", "--out", str(out), *extra]


def interrupt_fusion_then_resume(
    video: Path, tmp_path: Path, monkeypatch, between: Callable[[Path], None] = lambda work: None
) -> tuple[np.ndarray, np.ndarray]:
    """Depth of ``video`` from an uninterrupted ``run --geometry`` and from one interrupted in fusion
    and then resumed with tracking forbidden; ``between`` sees the work folder in between."""
    from videodepth.cli import main
    from videodepth.inference import runner
    from videodepth.io import read_depth_npz

    def args(out: str, *extra: str) -> list[str]:
        # one thread for both runs: the model's output moves in its last digits with the thread
        # count, which by default follows the machine's load
        return geometry_run(video, tmp_path / out, "--save", "npz", "--threads", "1", *extra)

    assert main(args("whole")) == 0
    real_refine = runner.refine_shots

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "refine_shots", interrupted)
    assert main(args("parts")) == 130
    between(tmp_path / "parts" / runner.WORK_FOLDER / video.stem)
    monkeypatch.setattr(runner, "refine_shots", real_refine)
    monkeypatch.setattr(runner, "track_frames", lambda *a, **k: pytest.fail("tracking ran again"))
    assert main(args("parts", "--resume")) == 0
    name = f"{video.stem}.npz"
    return read_depth_npz(tmp_path / "whole" / name), read_depth_npz(tmp_path / "parts" / name)
