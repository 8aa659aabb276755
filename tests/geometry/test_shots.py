"""Shot cuts: found where the picture changes, not where the camera moves fast, the exposure
changes or frames repeat; and each shot of a video given its own geometry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_test_video
from tests.geometry import depth_seen_from, geometry_run, interrupt_fusion_then_resume
from videodepth.cli import main
from videodepth.geometry.shots import (
    find_cuts,
    find_shots,
    frame_differences,
    per_shot,
    shot_index,
    shot_ranges,
)
from videodepth.io import read_depth_npz
from videodepth.synth.render import render_clip
from videodepth.synth.scenes import SceneConfig

SIZE = (128, 224)


@pytest.fixture(scope="module")
def two_scenes():
    first = render_clip(
        SceneConfig(family="tabletop", camera_motion="orbit"), 3, num_frames=24, height=SIZE[0], width=SIZE[1]
    )
    second = render_clip(SceneConfig(family="street"), 11, num_frames=24, height=SIZE[0], width=SIZE[1])
    return first.rgb, second.rgb


def texture(height: int, width: int, grain: int = 8, seed: int = 0) -> np.ndarray:
    """A random coloured texture with blobs of about ``grain`` pixels."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (height // grain, width // grain, 3), dtype=np.uint8)
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)


def test_a_cut_between_two_scenes_is_found_at_its_frame(two_scenes):
    first, second = two_scenes
    frames = np.concatenate([first, second])
    assert find_shots(iter(frames), len(frames)) == [range(0, 24), range(24, 48)]
    assert find_shots(iter(first), len(first)) == [range(0, 24)]


@pytest.mark.parametrize("black_frames", [1, 3])
def test_a_cut_through_black_is_found_where_the_next_shot_begins(two_scenes, black_frames):
    first, second = two_scenes
    black = np.zeros((black_frames, *first.shape[1:]), np.uint8)
    frames = np.concatenate([first, black, second])
    assert find_cuts(frame_differences(iter(frames))) == [24 + black_frames]


def test_a_flash_within_a_shot_is_not_a_cut(two_scenes):
    first, _ = two_scenes
    frames = first.copy()
    frames[12] = 255  # one white frame: a flash, or a frame lost to the encoder
    assert find_cuts(frame_differences(iter(frames))) == []


def test_a_fast_pan_an_exposure_change_and_repeated_frames_are_not_cuts():
    big = texture(128, 2400)
    pan = np.stack([big[:, 40 * k : 40 * k + 224] for k in range(40)])  # 18% of the width a frame
    coarse = texture(128, 400, grain=32)
    exposure = np.stack([coarse[:, k : k + 224] for k in range(20)])  # a slow pan ...
    exposure[10:] = np.clip(exposure[10:].astype(int) * 1.4, 0, 255).astype(np.uint8)  # ... brightens
    repeated = np.repeat(pan[::4], 4, axis=0)  # every frame four times, as frame-rate conversion does
    for frames in (pan, exposure, repeated):
        assert find_cuts(frame_differences(iter(frames))) == []


def test_cuts_respect_the_shortest_shot():
    differences = np.zeros((40, 2))
    differences[:, 0], differences[:, 1] = 2.0, 0.9
    differences[[10, 13, 36], 0], differences[[10, 13, 36], 1] = 80.0, 0.0
    # 13 is 3 frames after a cut (a flash), 36 would leave a 4-frame shot
    assert find_cuts(differences) == [10]


def test_shots_split_one_stream_decoded_once():
    shots = shot_ranges([3, 7], 10)
    assert shots == [range(0, 3), range(3, 7), range(7, 10)]
    assert [shot_index(shots, i) for i in (0, 2, 3, 6, 7, 9)] == [0, 0, 1, 1, 2, 2]
    decoded = []
    stream = (decoded.append(i) or i for i in range(10))
    firsts = [next(frames) for _, frames in per_shot(stream, shots)]  # the rest of each shot is skipped
    assert firsts == [0, 3, 7] and decoded == list(range(10))


def test_each_shot_of_a_video_gets_its_own_geometry(two_scenes, tmp_path, capsys):
    """The orbit scene keeps its geometry when another scene follows it: the summary names both
    shots, the cameras are numbered by shot with video-wide frame indices, and each shot with
    geometry is normalised on its own."""
    first, second = two_scenes
    video = write_test_video(tmp_path / "two.mp4", np.concatenate([first, second]))
    out = tmp_path / "out"
    args = geometry_run(video, out, "--output-size", "processed")
    out.mkdir()
    for name in (
        "two_points.ply",
        "two_points_shot007.ply",
        "two_points_shot002.ply",
        "two2_points_shot001.ply",  # another video's
        "two_shot001_points.ply",  # the whole cloud of a video named `two_shot001`
    ):
        (out / name).write_bytes(b"an earlier run")
    assert main([*args, "--save", "npz,cameras,ply"]) == 0
    summary = capsys.readouterr().out
    # an earlier run's clouds of this video go (shot 2 has no geometry now); another video's stay
    assert sorted(p.name for p in out.glob("*.ply")) == [
        "two2_points_shot001.ply",
        "two_points_shot001.ply",
        "two_shot001_points.ply",
    ]
    assert "geometry: 2 shots (cuts at frames 24)" in summary and "shot 1 (frames 0-23): used on" in summary
    frames = json.loads((out / "two_cameras.json").read_text())["frames"]
    first_shot = [f["index"] for f in frames if f["shot"] == 1]
    assert len(first_shot) >= 22 and max(first_shot) <= 23
    assert all(f["index"] >= 24 for f in frames if f["shot"] == 2)
    # the shot's own normalisation puts its depth files back in its reconstruction's units
    mappings = {tuple(f["inverse_depth_from_output"]) for f in frames if f["shot"] == 1}
    assert len(mappings) == 1 and next(iter(mappings))[0] > 0
    document = json.loads((out / "two_cameras.json").read_text())
    inside, mismatch = depth_seen_from(document, read_depth_npz(out / "two.npz"), 4, 16)
    assert inside > 0.5 and mismatch < 0.05
    assert (out / "two_colmap" / "shot_001" / "images.txt").is_file()
    assert (out / "two_points_shot001.ply").stat().st_size > 1000
    depth = read_depth_npz(out / "two.npz")
    shot_1 = depth[:24]
    assert shot_1.min() == pytest.approx(0, abs=1e-3) and shot_1.max() == pytest.approx(1, abs=1e-3)


def test_the_geometry_report_gives_each_shot_its_row_and_sheet(two_scenes, tmp_path):
    import csv

    first, second = two_scenes
    video = write_test_video(tmp_path / "two.mp4", np.concatenate([first, second]))
    out = tmp_path / "report"
    args = ["geometry-report", str(video), "--out", str(out), "--max-res", "224", "--no-progress"]
    assert main(args) == 0
    with open(out / "geometry_report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["clip"], r["frames"]) for r in rows] == [("two@0-23", "24"), ("two@24-47", "24")]
    assert (out / "two@0-23_sheet.png").is_file() and (out / "two@24-47_sheet.png").is_file()
    assert main(args) == 0  # a rerun skips the finished clip instead of adding rows
    with open(out / "geometry_report.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 2


def test_a_clip_with_a_cut_is_labelled_on_its_longest_shot(two_scenes):
    from videodepth.training.real_labels import ClipSource, LabelOptions, label_geometry

    first, second = two_scenes
    frames = np.concatenate([first[:10], second])  # a 10-frame shot, then a 24-frame one
    seen = []

    def learned_of(shot_frames):
        seen.append(len(shot_frames))
        return np.ones(shot_frames.shape[:3], np.float32)

    _, row = label_geometry(
        ClipSource("two", Path("two.mp4"), "video"), frames, 24.0, learned_of, LabelOptions()
    )
    assert row.frames == 24 and set(seen) <= {24}


def test_resume_reuses_every_shots_tracking(two_scenes, tmp_path, monkeypatch, capsys):
    first, second = two_scenes
    video = write_test_video(tmp_path / "two.mp4", np.concatenate([first, second]))
    tracked = []
    whole, resumed = interrupt_fusion_then_resume(
        video,
        tmp_path,
        monkeypatch,
        lambda work: tracked.extend(sorted(p.name for p in work.glob("track*.npz"))),
    )
    assert tracked == ["track_000000-000024.npz", "track_000024-000048.npz"]
    assert "geometry: 2 shots" in capsys.readouterr().out
    assert np.array_equal(resumed, whole)


def test_the_summary_of_a_long_edit_stays_readable():
    from videodepth.geometry.checks import GeometryChecks
    from videodepth.geometry.refine import GeometryResult, VideoGeometry
    from videodepth.geometry.tracking import Track

    shots = [range(10 * k, 10 * k + 10) for k in range(12)]
    still = [
        GeometryResult(Track.empty(10, (8, 8), "a still camera"), GeometryChecks(note="a still camera"))
    ] * 12
    line = VideoGeometry(shots, still).summary()
    assert "\n" not in line and line.startswith(
        "geometry: 12 shots (cuts at frames 10, 20, 30, 40, 50, 60, 70, 80 and 3 more)"
    )
    assert line.count("): not used (a still camera)") == 8 and line.endswith("; 4 more shots")


def test_a_shots_tracking_notes_name_frames_of_the_video(two_scenes):
    from videodepth.geometry import TrackingOptions, track_frames

    track = track_frames(iter(two_scenes[1][:1]), 1, TrackingOptions(max_side=224), first_frame=24)
    assert track.note.startswith("frames 24-24: one frame")
