"""The real-video label engine (`videodepth data label`) on rendered clips and made-up stereo
pairs, its split over processes, its options, and the objective's use of the labels."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from tests.conftest import write_test_video
from videodepth.cli import main
from videodepth.data.dataset import ItemKey, StepKeyedShards
from videodepth.data.shards import read_shard, write_shard
from videodepth.errors import InputError
from videodepth.synth.render import render_clip
from videodepth.synth.scenes import SceneConfig
from videodepth.training.config import load_config
from videodepth.training.real_labels import (
    LabelOptions,
    find_clips,
    label_clips,
    label_geometry_options,
    moving_pixels,
    rank_and_world,
    report_path,
    stereo_disparity,
)

from .conftest import tiny_config_values, write_config

REPO = Path(__file__).resolve().parents[2]
FRAMES, SIZE = 24, (128, 192)  # sides multiples of 64: the processing size is the rendered size


def read_report(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as handle:
        return {row["clip"]: row for row in csv.DictReader(handle)}


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture (uint8 RGB) that block matching and SIFT both lock on to."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (height // 3, width // 3, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def write_stereo_folder(folder: Path, shift: int, frames: int = 2, vertical: int = 0, seed: int = 0) -> Path:
    """rgb/ (left) and right/ images of a fronto-parallel texture: the right view is the left one
    moved ``shift`` pixels to the left (disparity ``shift`` everywhere), ``vertical`` pixels up."""
    for side in ("rgb", "right"):
        (folder / side).mkdir(parents=True)
    for i in range(frames):
        wide = textured(128 + 16, 192 + 32, seed + i)
        left = wide[8:136, 16:208]
        right = wide[8 + vertical : 136 + vertical, 16 + shift : 208 + shift]
        cv2.imwrite(str(folder / "rgb" / f"{i:05d}.png"), left[..., ::-1])
        cv2.imwrite(str(folder / "right" / f"{i:05d}.png"), right[..., ::-1])
    return folder


def write_still_video(path: Path, frames: int = 6, seed: int = 0) -> Path:
    return write_test_video(path, np.repeat(textured(64, 128, seed)[None], frames, 0))


@pytest.fixture(scope="module")
def rendered_videos(tmp_path_factory):
    """A table top the camera orbits, and the same scene filmed by a still camera, as mp4 files."""
    folder = tmp_path_factory.mktemp("videos")
    clips = {}
    for name, motion in (("orbit", "orbit"), ("still", "static")):
        clip = render_clip(SceneConfig(family="tabletop", camera_motion=motion), 3, FRAMES, *SIZE)
        write_test_video(folder / f"{name}.mp4", clip.rgb)
        clips[name] = clip
    return folder, clips


def test_moving_camera_is_labelled_and_still_camera_skipped(rendered_videos, tmp_path):
    folder, clips = rendered_videos
    out = tmp_path / "shards"
    assert main(["data", "label", str(folder), "--out", str(out), "--frames", str(FRAMES),
                 "--min-confidence", "0.3"]) == 0  # fmt: skip
    report = read_report(out / "label_report.csv")
    assert set(report) == {"orbit", "still"}
    assert report["still"]["status"] == "skipped" and "still camera" in report["still"]["reason"]
    assert report["orbit"]["status"] == "labelled" and float(report["orbit"]["reprojection_px"]) <= 1.0
    assert not (out / "still.npz").exists()

    shard = read_shard(out / "orbit.npz")
    assert shard.label == "geometry" and shard.label_params["source"].endswith("orbit.mp4")
    assert shard.label_params["checks"].startswith("geometry: used on")
    assert np.isfinite(shard.label_params["distortion"])  # K is pinhole: the lens's k1 beside it
    assert shard.confidence.shape == shard.depth.shape == (FRAMES, *SIZE)
    assert shard.confidence.min() == 0 and shard.confidence.max() <= 1
    labelled = shard.depth > 0
    assert (
        np.array_equal(labelled, shard.confidence > 0) and shard.confidence[labelled].min() >= 0.3 - 1 / 255
    )
    # the label (1 / depth, arbitrary units) orders the pixels as the true disparity does. Measured:
    # Spearman 0.94 here (0.90 over every labelled pixel without --min-confidence; 0.85-0.96 over the
    # rendered clips the engine labelled, with the shipped model or a plain near-bottom layout as the
    # prior); a flat or broken label measured 0.04-0.5. 0.8 keeps a margin for platform noise.
    truth = clips["orbit"].depth
    both = labelled & (truth > 0)
    assert both.mean() > 0.3
    rho = spearmanr(1 / shard.depth[both], 1 / truth[both]).statistic
    assert rho > 0.8, rho


def a_finished_run(folder, tmp_path, monkeypatch, options: LabelOptions):
    """An output folder where an earlier run labelled the orbit and skipped the still clip under
    ``options``; loading a model from here on fails the test."""
    out = tmp_path / "shards"
    out.mkdir()
    (out / "orbit.npz").write_bytes(b"already labelled")
    (out / "label_report.csv").write_text(
        f"clip,kind,status,reason,settings\nstill,geometry,skipped,a still camera,{options.fingerprint('built-in')}\n"
    )
    import videodepth.loading

    monkeypatch.setattr(videodepth.loading, "load_pipeline", lambda *a, **k: pytest.fail("model loaded"))
    return out


def test_a_rerun_skips_finished_clips_without_loading_a_model(rendered_videos, tmp_path, monkeypatch):
    folder, _ = rendered_videos
    options = LabelOptions(frames=FRAMES)
    out = a_finished_run(folder, tmp_path, monkeypatch, options)
    summary = label_clips([folder], out, options, progress=False, rank=0, world=1)
    assert summary.rows == [] and sorted(summary.resumed) == ["orbit", "still"]


def test_a_clip_skipped_under_other_settings_is_tried_again(rendered_videos, tmp_path, monkeypatch):
    """Changing a limit (here the rank check) reconsiders the clips an earlier run skipped; the
    new row records the new settings, so the next rerun resumes."""
    folder, _ = rendered_videos
    earlier = LabelOptions(frames=FRAMES)
    out = a_finished_run(folder, tmp_path, monkeypatch, earlier)
    looser = LabelOptions(frames=FRAMES, geometry=label_geometry_options(min_rank_agreement=-1.0))
    assert looser.fingerprint("built-in") != earlier.fingerprint("built-in")
    summary = label_clips([folder], out, looser, progress=False, rank=0, world=1)
    assert [row.clip for row in summary.rows] == ["still"] and summary.resumed == ["orbit"]
    assert summary.rows[0].status == "skipped" and summary.rows[0].settings == looser.fingerprint("built-in")
    again = label_clips([folder], out, looser, progress=False, rank=0, world=1)
    assert again.rows == [] and sorted(again.resumed) == ["orbit", "still"]
    # the files' order does not decide: a rank's report sorts after the single-process one
    (out / "label_report.rank1.csv").write_text(
        f"clip,kind,status,settings\nstill,geometry,skipped,{earlier.fingerprint('built-in')}\n"
    )
    assert sorted(label_clips([folder], out, looser, progress=False, rank=0, world=1).resumed) == [
        "orbit",
        "still",
    ]
    # another model for the prior is another setting
    other = label_clips([folder], out, looser, model="some/model", progress=False, rank=0, world=1)
    assert [row.clip for row in other.rows] == ["still"]


def test_a_prior_that_contradicts_the_geometry_vetoes_the_label_unless_the_check_is_off(
    rendered_videos, tmp_path
):
    """A prior whose depth order is the reverse of the scene's: by default the clip is skipped for
    it (an inverted reconstruction and a wrong prior look alike); with the check off (-1) the clip
    is labelled, and its label still follows the geometry, not the prior."""
    folder, clips = rendered_videos
    truth = clips["orbit"].depth

    def reversed_prior(frames: np.ndarray) -> np.ndarray:
        far = np.stack([cv2.resize(d, frames.shape[2:0:-1], interpolation=cv2.INTER_AREA) for d in truth])
        return (far - far.min()) / (far.max() - far.min())  # disparity-like, but large where far

    videos = [folder / "orbit.mp4"]
    skipped = label_clips(videos, tmp_path / "a", LabelOptions(frames=FRAMES), pipeline=reversed_prior,
                          progress=False, rank=0, world=1)  # fmt: skip
    assert "rank agreement" in skipped.rows[0].reason and skipped.rows[0].rank_agreement < -0.5
    options = LabelOptions(frames=FRAMES, geometry=label_geometry_options(min_rank_agreement=-1.0))
    labelled = label_clips(
        videos, tmp_path / "b", options, pipeline=reversed_prior, progress=False, rank=0, world=1
    )
    assert labelled.rows[0].status == "labelled", labelled.rows[0].reason
    shard = read_shard(tmp_path / "b" / "orbit.npz")
    confident = (shard.confidence > 0.5) & (truth > 0)
    assert spearmanr(1 / shard.depth[confident], 1 / truth[confident]).statistic > 0.8


def test_moving_pixels_are_those_off_their_epipolar_lines():
    """Two planes slide sideways at their own speeds (a camera translating past them); a patch
    moves down across them, which no rigid scene seen by that camera can do."""
    count, height, width = 9, 96, 160
    near, far = textured(height, width + 64, 1), textured(height, width + 64, 2)
    frames, truth = [], np.zeros((count, height, width), bool)
    for t in range(count):
        frame = np.concatenate(
            [far[: height // 2, t : t + width], near[height // 2 :, 3 * t : 3 * t + width]]
        )
        top = 20 + 2 * t
        frame[top : top + 24, 60:90] = textured(24, 30, 3)
        truth[t, top : top + 24, 60:90] = True
        frames.append(frame)
    moving = moving_pixels(np.stack(frames), gap=2, threshold_px=2.0)
    inner = moving[2:-2]
    assert (inner & truth[2:-2]).sum() > 0.5 * truth[2:-2].sum()  # most of the patch
    assert (inner & ~truth[2:-2]).sum() < 0.05 * (~truth[2:-2]).sum()  # little of the rigid scene


def test_stereo_pairs_are_labelled_with_their_disparity(tmp_path):
    # np.roll wraps the left border round to the right: only columns 6 to 180 have a true match
    disparity, consistent = stereo_disparity(textured(128, 192), np.roll(textured(128, 192), -6, axis=1))
    inside, found = disparity[:, 6:-12], consistent[:, 6:-12]
    assert found.mean() > 0.9 and np.allclose(inside[found], 6, atol=0.5)

    write_stereo_folder(tmp_path / "clips" / "pair", shift=6)
    write_stereo_folder(tmp_path / "clips" / "tilted", shift=6, vertical=3, seed=5)
    summary = label_clips([tmp_path / "clips"], tmp_path / "out", progress=False, rank=0, world=1)
    rows = {row.clip: row for row in summary.rows}
    assert rows["pair"].status == "labelled" and rows["pair"].kind == "stereo"
    assert rows["tilted"].status == "skipped" and "not rectified" in rows["tilted"].reason
    shard = read_shard(tmp_path / "out" / "pair.npz")
    assert shard.label == "stereo" and shard.depth.shape == (2, 128, 192)
    confident = shard.confidence > 0
    assert set(np.unique(shard.confidence)) <= {0.0, 1.0} and np.array_equal(confident, shard.depth > 0)
    assert confident.mean() > 0.85 and not confident[:, :, :6].any()  # the strip the right view cannot see
    measured = 1 / shard.depth[confident]
    assert np.median(np.abs(measured - 6)) < 0.1 and np.mean(np.abs(measured - 6) <= 0.5) > 0.99


def test_two_processes_split_the_clips_and_a_rerun_skips_them_all(tmp_path):
    clips = tmp_path / "clips"
    write_stereo_folder(clips / "a_pair", shift=5, seed=1)
    write_stereo_folder(clips / "b_pair", shift=7, seed=2)
    write_still_video(clips / "c_still.mp4", seed=3)
    write_still_video(clips / "d_still.mp4", seed=4)
    out = tmp_path / "out"

    def run_both() -> list[str]:
        processes = [
            subprocess.Popen([sys.executable, "-m", "videodepth", "data", "label", str(clips), "--out", str(out)],
                             env={**os.environ, "RANK": str(rank), "WORLD_SIZE": "2"}, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for rank in range(2)
        ]  # fmt: skip
        outputs = [p.communicate(timeout=240) for p in processes]
        assert [p.returncode for p in processes] == [0, 0], outputs
        return [stdout for stdout, _ in outputs]

    first = run_both()
    reports = [read_report(out / f"label_report.rank{rank}.csv") for rank in range(2)]
    assert set(reports[0]) == {"a_pair", "c_still"} and set(reports[1]) == {"b_pair", "d_still"}
    assert all(
        r["status"] == ("labelled" if "pair" in name else "skipped")
        for rep in reports
        for name, r in rep.items()
    )
    assert sorted(p.name for p in out.glob("*.npz")) == ["a_pair.npz", "b_pair.npz"]
    assert all("2 clips: 1 labelled, 1 skipped, 0 failed, 0 already done" in text for text in first)

    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run_both()
    assert all("2 clips: 0 labelled, 0 skipped, 0 failed, 2 already done" in text for text in again)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps  # nothing rewritten


CHECK_TORCH = """
import sys
from videodepth.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
print("torch imported" if "torch" in sys.modules else "torch not imported")
sys.exit(code)
"""


@pytest.mark.parametrize(
    ("arguments", "environment", "expected"),
    [
        (["--frames", "0"], {}, "--frames: must be an integer >= 1, got 0"),
        (["--max-res", "32"], {}, "--max-res: must be an integer >= 64, got 32"),
        (["--min-confidence", "1.5"], {}, "--min-confidence: must be a number >= 0 and <= 1, got 1.5"),
        (["--fill-weight", "nan"], {}, "--fill-weight: expected a finite number"),
        (["--min-rank-agreement", "2"], {}, "--min-rank-agreement: must be a number >= -1 and <= 1, got 2"),
        (["--device", "gpu"], {}, "--device: choose auto, cpu, cuda, cuda:N or mps"),
        ([], {"RANK": "2", "WORLD_SIZE": "2"}, "RANK must be in [0, WORLD_SIZE), got RANK=2 WORLD_SIZE=2"),
        ([], {"RANK": "one"}, "RANK and WORLD_SIZE must be integers"),
    ],
)
def test_bad_options_are_one_line_and_exit_2_without_torch(tmp_path, arguments, environment, expected):
    write_still_video(tmp_path / "clip.mp4")
    command = ["data", "label", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "out"), *arguments]
    result = subprocess.run([sys.executable, "-c", CHECK_TORCH, *command], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "RANK": "0", "WORLD_SIZE": "1", **environment}, timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr
    assert result.stdout.strip() == "torch not imported"
    assert not (tmp_path / "out").exists()


def test_clips_are_found_excluded_and_ranked(tmp_path):
    write_stereo_folder(tmp_path / "root" / "pair", shift=4)
    (tmp_path / "root" / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "root" / "frames" / "0.png"), textured(64, 64))
    (tmp_path / "root" / "more").mkdir()
    write_still_video(tmp_path / "root" / "more" / "clip.mp4")
    (tmp_path / "root" / "notes.txt").write_text("not a clip")
    clips = find_clips([tmp_path / "root"])
    assert [(c.name, c.kind) for c in clips] == [("clip", "video"), ("frames", "video"), ("pair", "stereo")]
    assert [c.name for c in find_clips([tmp_path / "root"], exclude=["pair", "clip"])] == ["frames"]
    with pytest.raises(InputError, match="not found"):
        find_clips([tmp_path / "missing.mp4"])
    assert rank_and_world({"RANK": "1", "WORLD_SIZE": "3"}) == (1, 3) and rank_and_world({}) == (0, 1)
    assert report_path(tmp_path, None, 0, 1) == tmp_path / "label_report.csv"
    assert report_path(tmp_path, tmp_path / "r.csv", 2, 4) == tmp_path / "r.rank2.csv"


def test_config_validates_the_real_shard_mix(tmp_path, tiny_shards):
    for data, message in (({"real_fraction": 1.5}, "real_fraction must be in"),
                          ({"real_fraction": 0.5}, "needs data.real_shards")):  # fmt: skip
        path = write_config(tmp_path / "c.yaml", tiny_config_values(tiny_shards, tmp_path / "run", data=data))
        with pytest.raises(InputError, match=message):
            load_config(path)


def test_portrait_clips_are_cropped_upright_when_orientations_match(tmp_path, tiny_shards):
    """A phone clip held upright is trained on upright, as inference sees it; landscape clips,
    and every clip without the option, keep data.size as it is."""
    write_shard(render_clip(SceneConfig("indoor"), 7, 3, 72, 40), tmp_path / "real" / "portrait.npz")
    key = ItemKey(step=0, micro=0, rank=0, slot=0, length=2)
    for match, shape in ((False, (32, 64)), (True, (64, 32))):
        dataset = StepKeyedShards([tiny_shards], (32, 64), real_roots=[tmp_path / "real"], real_fraction=1.0,
                                  match_orientation=match)  # fmt: skip
        assert dataset[key]["rgb"].shape[-2:] == shape
    assert StepKeyedShards([tiny_shards], (32, 64), match_orientation=True)[key]["rgb"].shape[-2:] == (32, 64)
    data = {"match_orientation": True, "batch_size": 2}
    path = write_config(tmp_path / "c.yaml", tiny_config_values(tiny_shards, tmp_path / "run", data=data))
    with pytest.raises(InputError, match="match_orientation needs data.batch_size 1"):
        load_config(path)


def test_the_confidence_reaches_the_loss_as_a_per_cell_weight(tmp_path, tiny_shards, monkeypatch):
    from videodepth.models.denoiser import Denoiser
    from videodepth.training.trainer import Trainer

    clip = render_clip(SceneConfig("indoor"), 7, 4, 40, 72, label="realistic")
    clip.confidence = (
        np.where(np.arange(72) < 36, 1.0, 0.2).astype(np.float32)[None, None].repeat(4, 0).repeat(40, 1)
    )
    write_shard(clip, tmp_path / "real" / "indoor.npz")
    seen = []
    real_loss = Denoiser.loss

    def recording_loss(self, x0, cond, sigma, noise, weight=None, *args, **kwargs):
        seen.append(weight)
        return real_loss(self, x0, cond, sigma, noise, weight, *args, **kwargs)

    monkeypatch.setattr(Denoiser, "loss", recording_loss)
    values = tiny_config_values(tiny_shards, tmp_path / "run", steps=1,
                                data={"real_shards": [str(tmp_path / "real")], "real_fraction": 1.0},
                                objective={"invalid": "by_label", "scale_shift_weight": 1.0})  # fmt: skip
    Trainer(
        load_config(write_config(tmp_path / "c.yaml", values)), tmp_path / "run", show_progress=False
    ).train()
    assert len(seen) == 1 and seen[0] is not None
    weight = seen[0]
    assert weight.dim() == 5 and weight.shape[2] == 1  # [B, T, 1, h, w]: one weight per latent cell
    assert torch.unique(weight.round(decimals=3)).numel() > 2  # not a plain valid mask: graded by confidence
    assert float(weight.max()) <= 1.0 + 1e-6 and float(weight.min()) >= 0.0
