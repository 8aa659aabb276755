"""``videodepth eval``: predictions and metrics over a dataset, on the DepthCrafter protocol.

Each sequence (any layout ``videodepth.data.readers`` understands) is resized to the processing
size, predicted in one run of the chosen strategy, and scored: AbsRel, delta1..3 and RMSE after
one scale and shift per video, Video Depth Anything's TAE where poses exist, and the optical-
flow flicker score. Results go to a CSV row per video as soon as the video is done (finished
videos are skipped when the command is run again) and to a Markdown summary.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from videodepth.data.clip import Sequence
from videodepth.data.readers import list_sequences, read_sequence
from videodepth.errors import InputError
from videodepth.eval.flicker import flicker
from videodepth.eval.metrics import DATASET_MAX_DEPTH, DATASET_SEQ_LEN, evaluate_video
from videodepth.eval.registration import (
    DepthToColor,
    fit_depth_to_color,
    register_sequence,
    require_intrinsics,
)
from videodepth.geometry import GeometryOptions
from videodepth.geometry.refine import refine_in_memory
from videodepth.inference.pipeline import VideoDepthPipeline
from videodepth.inference.settings import RunSettings
from videodepth.io import append_csv_row, processing_size, resize_rgb

METRICS = ("abs_rel", "delta1", "delta2", "delta3", "rmse", "tae", "flicker", "ms_per_frame")


@dataclass
class EvalOptions:
    dataset: str = "auto"  # sets max depth and sequence length as in the papers' protocol
    max_res: int = 448
    max_frames: int | None = None
    limit: int | None = None  # evaluate only the first N sequences
    label: str = ""  # a name for this configuration in the tables
    # NYU-style: every frame is predicted alone and aligned alone; every n-th frame is used.
    single_frame_stride: int = 0
    # Save the predictions of the first N sequences (float16 npz) for figures.
    keep_predictions: int = 0
    # Refine the model's depth with the sequence's own multi-view geometry (``--geometry``).
    geometry: GeometryOptions | None = None
    # Move a depth sensor's ground truth into the colour camera first (``--register-depth``):
    # a fixed registration, "auto" (fitted per sequence on its images), or None (as recorded).
    register_depth: DepthToColor | Literal["auto"] | None = None


def sequence_settings(options: EvalOptions, fallback_max_depth: float) -> tuple[float, int | None]:
    name = options.dataset.lower()
    if name in DATASET_MAX_DEPTH:
        return DATASET_MAX_DEPTH[name], options.max_frames or DATASET_SEQ_LEN.get(name)
    return fallback_max_depth, options.max_frames


def predict_sequence(pipeline: VideoDepthPipeline, rgb: np.ndarray, settings: RunSettings, max_res: int):
    """Disparity [T, h, w] in [0, 1] at the processing size, the resized RGB, and the seconds taken."""
    multiple = max(64, pipeline.size_multiple)
    size = processing_size(rgb.shape[1], rgb.shape[2], max_res, multiple)
    frames = np.stack([resize_rgb(frame, size) for frame in rgb])
    started = time.perf_counter()
    depth = pipeline(frames, settings)
    return depth, frames, time.perf_counter() - started


def sequence_name(root: Path, path: Path) -> str:
    """A sequence's path inside its dataset: unique and stable across runs, so results are keyed by it."""
    return str(path.relative_to(root)) if path != Path(root) else path.name


def read_for_eval(path: Path, options: EvalOptions) -> tuple[Sequence, float, int | None]:
    """The sequence cut to the protocol's length, its max depth and that length."""
    max_depth, seq_len = sequence_settings(options, read_sequence(path, max_frames=1).max_depth)
    return read_sequence(path, max_frames=seq_len), max_depth, seq_len


def evaluate_sequence(
    pipeline, path: Path, settings: RunSettings, options: EvalOptions, name: str, keep: Path | None = None
) -> dict:
    sequence, max_depth, seq_len = read_for_eval(path, options)
    sequence, ground_truth_note = registered_ground_truth(sequence, options.register_depth)
    if options.single_frame_stride:
        return _evaluate_frames_alone(pipeline, sequence, settings, options, max_depth, name)
    prediction, frames, seconds = predict_sequence(pipeline, sequence.rgb, settings, options.max_res)
    geometry_note, camera_error = "", float("nan")
    if options.geometry is not None:
        started = time.perf_counter()
        prediction, _, result = refine_in_memory(prediction, sequence.rgb, options.geometry)
        seconds += time.perf_counter() - started
        geometry_note = result.summary()
        if sequence.poses_c2w is not None:  # measured whether or not the checks let the geometry in
            camera_error = camera_path_error(result.track.c2w, sequence.poses_c2w)
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(keep, depth=prediction.astype(np.float16))
    K, poses = sequence.tae_camera()
    scores = evaluate_video(prediction, sequence.depth, max_depth, seq_len=seq_len, K=K, poses_c2w=poses)
    scores["flicker"] = flicker(frames, prediction) if len(frames) > 1 else float("nan")
    scores["ms_per_frame"] = 1000 * seconds / len(frames)
    return {
        "sequence": name,
        "frames": len(frames),
        **scores,
        "camera_error": camera_error,
        "geometry": geometry_note,
        "ground_truth": ground_truth_note,
    }


def check_registrable(root: str | Path, limit: int | None = None) -> None:
    """Before any model loads: every sequence to be scored records its depth camera's intrinsics."""
    paths = list_sequences(Path(root))
    for path in paths[:limit] if limit else paths:
        require_intrinsics(read_sequence(path, max_frames=1))


def registered_ground_truth(
    sequence: Sequence, register: DepthToColor | Literal["auto"] | None
) -> tuple[Sequence, str]:
    """The sequence with its depth moved into the colour camera when asked, and a note saying how
    (or why it was kept as recorded: edges that decide no registration)."""
    if register is None:
        return sequence, "as recorded"
    K_depth = require_intrinsics(sequence)
    if register != "auto":
        return register_sequence(sequence, register), f"registered to colour ({register.describe()})"
    registration, before, after = fit_depth_to_color(sequence.rgb, sequence.depth, K_depth)
    if registration is None:
        return (
            sequence,
            f"as recorded: no registration brings its depth edges nearer to colour edges ({before:.1f} px)",
        )
    note = f"registered to colour ({registration.describe()}; edges {before:.1f} -> {after:.1f} px from colour edges)"
    return register_sequence(sequence, registration), note


def camera_path_error(estimated_c2w: np.ndarray, true_c2w: np.ndarray) -> float:
    """Mean camera-centre error of the registered frames after the best similarity transform,
    as a share of the true path's length (scale-free, as a reconstruction's units are)."""
    from videodepth.geometry.tracking import umeyama

    registered = np.isfinite(estimated_c2w[:, 0, 0])
    if registered.sum() < 3:
        return float("nan")
    estimated, truth = estimated_c2w[registered, :3, 3], np.asarray(true_c2w, np.float64)[registered, :3, 3]
    scale, rotation, translation = umeyama(estimated, truth)
    path = np.linalg.norm(np.diff(truth, axis=0), axis=1).sum()
    aligned = scale * estimated @ rotation.T + translation
    return float(np.linalg.norm(aligned - truth, axis=1).mean() / max(path, 1e-12))


def _evaluate_frames_alone(pipeline, sequence, settings, options, max_depth, name) -> dict:
    rows, seconds = [], 0.0
    indices = range(0, sequence.num_frames, options.single_frame_stride)
    for index in indices:
        prediction, _, took = predict_sequence(
            pipeline, sequence.rgb[index : index + 1], settings, options.max_res
        )
        rows.append(evaluate_video(prediction, sequence.depth[index : index + 1], max_depth))
        seconds += took
    scores = {key: float(np.mean([row[key] for row in rows])) for key in rows[0] if key != "frames"}
    scores.update(tae=float("nan"), flicker=float("nan"), ms_per_frame=1000 * seconds / len(rows))
    return {"sequence": name, "frames": len(rows), **scores}


def config_key(model_id: str, settings: RunSettings, options: EvalOptions) -> str:
    fields = dataclasses.asdict(options)
    if fields["register_depth"] is None:  # added later: results from before it keep their key
        del fields["register_depth"]
    payload = json.dumps([model_id, dataclasses.asdict(settings), fields], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def prediction_path(out_dir: Path, key: str, name: str) -> Path:
    """Where ``run_eval`` keeps the prediction of sequence ``name`` under configuration ``key``."""
    return Path(out_dir) / "predictions" / key / (name.replace("/", "__") + ".npz")


def _done(csv_path: Path, key: str) -> set[str]:
    if not csv_path.exists():
        return set()
    with open(csv_path, newline="") as handle:
        return {row["sequence"] for row in csv.DictReader(handle) if row.get("config") == key}


COLUMNS = [
    "config",
    "label",
    "dataset",
    "sequence",
    "frames",
    *METRICS,
    "scale",
    "shift",
    "camera_error",
    "geometry",
    "ground_truth",
]


def read_results(csv_path: Path) -> list[dict]:
    with open(csv_path, newline="") as handle:
        return list(csv.DictReader(handle))


def summarise(rows: list[dict]) -> list[dict]:
    """Mean of every metric per (label, dataset, config), over videos."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["label"], row["dataset"], row["config"]), []).append(row)
    summary = []
    for (label, dataset, key), members in groups.items():
        entry = {"label": label, "dataset": dataset, "config": key, "videos": len(members)}
        for metric in METRICS:
            values = [float(r[metric]) for r in members if r.get(metric) not in (None, "", "nan")]
            entry[metric] = float(np.mean(values)) if values else float("nan")
        summary.append(entry)
    return summary


def markdown(summary: list[dict]) -> str:
    header = "| configuration | dataset | videos | AbsRel | δ1 | TAE | flicker | ms/frame |\n|---|---|---|---|---|---|---|---|"
    lines = [header]
    for s in summary:
        lines.append(
            f"| {s['label'] or s['config']} | {s['dataset']} | {s['videos']} | {s['abs_rel']:.3f} | "
            f"{s['delta1']:.3f} | {s['tae']:.3f} | {s['flicker']:.4f} | {s['ms_per_frame']:.0f} |"
        )
    return "\n".join(lines)


def run_eval(
    pipeline: VideoDepthPipeline,
    root: str | Path,
    settings: RunSettings,
    options: EvalOptions,
    out_dir: str | Path,
    model_id: str = "",
    progress: bool = True,
) -> list[dict]:
    root = Path(root)
    paths = list_sequences(root)
    if not paths:
        raise InputError(f"{root}: no sequences found (see docs/DATA.md for the layouts)")
    paths = paths[: options.limit] if options.limit else paths
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "results.csv"
    key = config_key(model_id, settings, options)
    done = _done(csv_path, key)
    dataset = options.dataset if options.dataset != "auto" else Path(root).name
    for index, path in enumerate(tqdm(paths, desc="evaluating", unit="video", disable=not progress)):
        name = sequence_name(root, path)
        if name in done:
            continue
        keep = prediction_path(out_dir, key, name) if index < options.keep_predictions else None
        row = evaluate_sequence(pipeline, path, settings, options, name, keep)
        append_csv_row(csv_path, COLUMNS, {"config": key, "label": options.label, "dataset": dataset, **row})
    summary = summarise([r for r in read_results(csv_path) if r["config"] == key])
    (out_dir / "summary.md").write_text(markdown(summarise(read_results(csv_path))) + "\n")
    return summary
