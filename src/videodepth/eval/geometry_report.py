"""``videodepth geometry-report``: what the footage's own geometry gives on each clip.

For every clip (a video or an image folder) the model predicts depth on the first frames, the
geometry pipeline tracks, checks and fuses them, and one CSV row records the registered share,
every check's value, whether the geometry was used (or which check failed), the share of the
model's depth variance that row position alone explains (``row_share``: near 1 for a
near-bottom / far-top layout) and the seconds per frame of tracking and fusion. A contact sheet per clip (frame | learned | fused | confidence, at
three moments, and a fifth column with what the reconstruction gives when its checks are ignored)
lets a person judge both the depth and the checks by eye. A clip with shot cuts gets a row and a
sheet per shot (``clip@first-last``), each shot judged on its own as ``videodepth run`` does.
Finished clips are skipped on a rerun.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from videodepth.eval.metrics import row_variance_share
from videodepth.geometry import GeometryOptions, find_shots
from videodepth.geometry.checks import horizontal_fov_deg
from videodepth.geometry.refine import fuse_in_memory, track_in_memory
from videodepth.inference.pipeline import VideoDepthPipeline
from videodepth.inference.settings import RunSettings
from videodepth.io import VideoReader, atomic_file, colorize
from videodepth.io.tables import append_csv_row

COLUMNS = (
    "clip",
    "frames",
    "size",
    "image_motion",
    "registered",
    "points_per_frame",
    "reprojection_px",
    "triangulation_deg",
    "fov_deg",
    "rank_agreement",
    "relief",
    "homography_share",
    "off_plane",
    "row_share",
    "used",
    "frames_used",
    "reason",
    "model_s_per_frame",
    "tracking_s_per_frame",
    "fusion_s_per_frame",
)


@dataclass
class ReportOptions:
    max_frames: int = 60
    max_res: int = 448
    sheet_width: int = 1600


def clip_name(path: Path) -> str:
    return path.parent.name if path.name in ("rgb", "left") else path.stem if path.is_file() else path.name


def report_clip(
    pipeline: VideoDepthPipeline,
    path: Path,
    settings: RunSettings,
    geometry: GeometryOptions,
    options: ReportOptions,
    sheets: Path | None = None,
) -> list[dict]:
    """One row per shot of the clip's first ``max_frames`` frames (contact sheets into ``sheets``)."""
    reader = VideoReader(
        path,
        max_res=options.max_res,
        process_length=options.max_frames,
        multiple=max(64, pipeline.size_multiple),
    )
    originals = VideoReader(
        path,
        max_res=max(reader.info.height, reader.info.width),
        multiple=1,
        process_length=options.max_frames,
    )
    frames = np.stack(list(reader.frames()))
    full = np.stack(list(originals.frames()))
    started = time.perf_counter()
    learned = pipeline(frames, settings)  # the whole clip at once, as `run` predicts it
    model_seconds = time.perf_counter() - started
    shots = find_shots(iter(full), len(full), geometry.cuts)
    name = clip_name(path)
    rows = []
    for shot in shots:
        label = name if len(shots) == 1 else f"{name}@{shot.start}-{shot.stop - 1}"
        part = slice(shot.start, shot.stop)
        sheet = sheets / f"{label}_sheet.png" if sheets is not None else None
        row = _report_shot(frames[part], full[part], learned[part], geometry, options, sheet, shot.start)
        row.update(
            clip=label,
            size=f"{reader.info.width}x{reader.info.height}",
            model_s_per_frame=f"{model_seconds / len(frames):.2f}",
        )
        rows.append(row)
    return rows


def _report_shot(
    frames: np.ndarray,
    full: np.ndarray,
    learned: np.ndarray,
    geometry: GeometryOptions,
    options: ReportOptions,
    sheet: Path | None,
    first_frame: int = 0,
) -> dict:
    track, tracking_seconds = track_in_memory(full, geometry, first_frame)
    fused, confidence, result = fuse_in_memory(track, learned, full, geometry)
    result.seconds = {"tracking": tracking_seconds, **result.seconds}
    unchecked = fused
    if not result.used and track.registered.any():
        unchecked, _, _ = fuse_in_memory(
            track, learned, full, dataclasses.replace(geometry, enforce_checks=False)
        )
    num = len(frames)
    checks = result.checks
    row = {
        "frames": num,
        "image_motion": f"{checks.value('image motion'):.4f}",
        "registered": f"{result.track.registered.mean():.2f}",
        "points_per_frame": f"{checks.value('points per frame'):.0f}",
        "reprojection_px": f"{checks.value('reprojection error'):.2f}",
        "triangulation_deg": f"{checks.value('triangulation angle'):.1f}",
        "fov_deg": f"{horizontal_fov_deg(result.track):.0f}" if result.track.registered.any() else "nan",
        "rank_agreement": f"{checks.value('rank agreement'):.2f}",
        "relief": f"{checks.value('relief'):.2f}",
        "homography_share": f"{checks.value('one homography'):.2f}",
        "off_plane": f"{checks.off_plane:.3f}",
        "row_share": f"{row_variance_share(learned):.2f}",
        "used": "yes" if result.used else "no",
        "frames_used": result.frames_used,
        "reason": "" if result.used else checks.first_failure,
        **{f"{k}_s_per_frame": f"{v / num:.2f}" for k, v in result.seconds.items()},
    }
    if sheet is not None:
        write_contact_sheet(sheet, frames, learned, fused, confidence, unchecked, options.sheet_width)
    return row


def _robust_unit(values: np.ndarray) -> np.ndarray:
    low, high = np.percentile(values, [1, 99])
    return np.clip((values - low) / max(high - low, 1e-12), 0, 1)


def write_contact_sheet(
    path: Path,
    frames: np.ndarray,
    learned: np.ndarray,
    fused: np.ndarray,
    confidence: np.ndarray,
    unchecked: np.ndarray,
    width: int = 1600,
) -> Path:
    """Rows at the start, middle and end: frame | learned | result | confidence | checks ignored (PNG)."""
    # one range per column for the whole clip, as the outputs are normalised, and the same
    # stretch for every column: where the geometry is not used, learned and result look the same
    learned_unit, fused_unit, unchecked_unit = (_robust_unit(v) for v in (learned, fused, unchecked))
    rows = []
    for index in sorted({0, len(frames) // 2, len(frames) - 1}):
        tiles = [
            frames[index],
            colorize(learned_unit[index]),
            colorize(fused_unit[index]),
            colorize(np.clip(confidence[index], 0, 1), "gray"),
            colorize(unchecked_unit[index]),
        ]
        rows.append(np.concatenate(tiles, axis=1))
    image = np.concatenate(rows, axis=0)
    scale = width / image.shape[1]
    image = cv2.resize(image, (width, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    with atomic_file(path) as tmp:
        ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        tmp.write_bytes(data.tobytes())
    return path


def run_report(
    pipeline: VideoDepthPipeline,
    clips: list[Path],
    settings: RunSettings,
    geometry: GeometryOptions,
    options: ReportOptions,
    out_dir: Path,
    progress: bool = True,
) -> Path:
    from tqdm.auto import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "geometry_report.csv"
    done = set()
    if csv_path.exists():
        with open(csv_path, newline="") as handle:
            done = {re.sub(r"@\d+-\d+$", "", row["clip"]) for row in csv.DictReader(handle)}
    for path in tqdm(clips, desc="clips", unit="clip", disable=not progress):
        if clip_name(path) in done:
            continue
        for row in report_clip(pipeline, path, settings, geometry, options, out_dir):
            append_csv_row(csv_path, COLUMNS, row)
            if progress:
                tqdm.write(
                    f"{row['clip']}: {'used' if row['used'] == 'yes' else 'not used: ' + row['reason']}"
                )
    return csv_path
