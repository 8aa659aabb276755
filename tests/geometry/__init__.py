"""Helpers shared by the geometry tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
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


def depth_seen_from(document: dict, disparity: np.ndarray, first: int, second: int) -> tuple[float, float]:
    """Frame ``first``'s saved depth, put in the cameras' units by the cameras file's
    ``inverse_depth_from_output``, carried into frame ``second``'s camera: the share of its pixels
    that land inside that frame, and the median relative difference from that frame's own depth
    there."""
    frames = {entry["index"]: entry for entry in document["frames"]}
    a, b = frames[first], frames[second]
    depth_a = 1.0 / np.polyval(a["inverse_depth_from_output"], disparity[first])
    depth_b = 1.0 / np.polyval(b["inverse_depth_from_output"], disparity[second])
    height, width = depth_a.shape
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    # OpenCV's own undistortion and projection, as a user of the file would call them
    pixels_a = np.stack([xs, ys], -1).reshape(-1, 1, 2)
    normalised = cv2.undistortPoints(pixels_a, np.array(a["K"]), np.array(a["distortion"])).reshape(-1, 2)
    rays = np.concatenate([normalised, np.ones((len(normalised), 1))], axis=1)
    world = (rays * depth_a.reshape(-1, 1)) @ np.array(a["c2w"])[:3, :3].T + np.array(a["c2w"])[:3, 3]
    w2c_b = np.linalg.inv(b["c2w"])
    in_b = world @ w2c_b[:3, :3].T + w2c_b[:3, 3]
    in_front = in_b[:, 2] > 0
    u, v = np.full(len(in_b), -1.0), np.full(len(in_b), -1.0)
    projected, _ = cv2.projectPoints(
        in_b[in_front].reshape(-1, 1, 3),
        np.zeros(3),
        np.zeros(3),
        np.array(b["K"]),
        np.array(b["distortion"]),
    )
    u[in_front], v[in_front] = projected.reshape(-1, 2).T
    inside = in_front & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    seen = depth_b[v[inside].astype(int), u[inside].astype(int)]
    return float(inside.mean()), float(np.median(np.abs(in_b[inside, 2] / seen - 1)))


def aligned_abs_rel(prediction: np.ndarray, depth: np.ndarray) -> float:
    """AbsRel after one scale and shift in disparity, as the evaluation fits them."""
    valid = depth > 0
    design = np.stack([prediction[valid], np.ones(valid.sum())], axis=1)
    scale, shift = np.linalg.lstsq(design, 1 / depth[valid], rcond=None)[0]
    predicted = 1 / np.clip(scale * prediction[valid] + shift, 1e-3, None)
    return float(np.mean(np.abs(predicted - depth[valid]) / depth[valid]))
