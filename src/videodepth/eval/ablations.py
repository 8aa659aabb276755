"""Our reproduction of the papers' ablations with one model, written to a Markdown report.

Every configuration is one ``run_eval`` over the same sequences (results accumulate in one CSV,
so an interrupted run continues where it stopped); the report groups them as the papers do:
long-video strategies, window length, number of denoising steps, and single-frame evaluation.
The first sequence's predictions are kept, and the strategies are drawn side by side on it as
the papers' temporal profile (y-t slice) and per-frame AbsRel curves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from videodepth.data.readers import list_sequences
from videodepth.eval.metrics import align_video, per_frame_metrics, resize_prediction, valid_mask
from videodepth.eval.plots import metric_curves, temporal_profile, yt_slice
from videodepth.eval.runner import (
    EvalOptions,
    config_key,
    prediction_path,
    read_for_eval,
    read_results,
    run_eval,
    sequence_name,
    summarise,
)
from videodepth.inference.pipeline import VideoDepthPipeline
from videodepth.inference.settings import RunSettings
from videodepth.io import atomic_file, resize_rgb

REPORT_BEGIN = "<!-- BEGIN videodepth ablations (generated; edits inside are overwritten) -->"
REPORT_END = "<!-- END videodepth ablations -->"


@dataclass(frozen=True)
class Ablation:
    group: str
    label: str
    settings: dict = field(default_factory=dict)
    single_frame: bool = False
    in_curves: bool = True  # drawn in the per-frame AbsRel figure (strategies at their default settings)


def ablations(window: int) -> list[Ablation]:
    """The study, for a model whose natural window is ``window`` frames."""
    half, quarter = window // 2, max(1, window // 4)
    study = [
        Ablation("strategy", "naive", {"strategy": "naive", "context": half}),
        Ablation("strategy", "replacement", {"strategy": "replacement", "context": half}),
        Ablation(
            "strategy",
            "depthcrafter, no noise init, average blend",
            {"strategy": "depthcrafter", "overlap": quarter, "noise_init": False, "blend": "average"},
        ),
        Ablation(
            "strategy",
            "depthcrafter, noise init, average blend",
            {"strategy": "depthcrafter", "overlap": quarter, "blend": "average"},
        ),
        Ablation(
            "strategy",
            "depthcrafter, no noise init, linear blend",
            {"strategy": "depthcrafter", "overlap": quarter, "noise_init": False},
        ),
        Ablation("strategy", "depthcrafter (full)", {"strategy": "depthcrafter", "overlap": quarter}),
    ]
    for rank, context in enumerate(sorted({quarter, half, window - quarter})):
        study.append(
            Ablation(
                "strategy",
                f"chronodepth, context {context}",
                {"strategy": "chronodepth", "context": context},
                in_curves=rank < 2,
            )
        )
    for sigma_epsilon in (-6.0, -4.0, -2.0):
        study.append(
            Ablation(
                "strategy",
                f"chronodepth, c_noise(context) {sigma_epsilon:g}",
                {"strategy": "chronodepth", "context": half, "sigma_epsilon": sigma_epsilon},
                in_curves=False,
            )
        )
    for length in sorted({half, window, 2 * window}):
        study.append(
            Ablation(
                "window",
                f"depthcrafter, window {length}",
                {"strategy": "depthcrafter", "window": length, "overlap": max(1, length // 4)},
            )
        )
    for steps in (1, 2, 4, 8):
        study.append(Ablation("steps", f"{steps} steps", {"steps": steps}))
    study.append(Ablation("single frame", "each frame alone (NYU-style)", {"strategy": "single"}, True))
    return study


def run_ablations(
    pipeline: VideoDepthPipeline,
    root: Path,
    out_dir: Path,
    options: EvalOptions,
    model_id: str,
    seed: int = 42,
    figures_dir: Path | None = None,
    link_from: Path | None = None,
    progress=print,
) -> str:
    """Runs every ablation on ``root`` and draws the figures (into ``figures_dir``, default
    ``out_dir``); returns the Markdown section, its image links relative to ``link_from``."""
    base = RunSettings.for_model(pipeline.config, seed=seed)
    study = ablations(base.window)
    keys: dict[str, str] = {}
    for ablation in study:
        settings = replace(base, **ablation.settings)
        run_options = replace(
            options,
            label=ablation.label,
            single_frame_stride=10 if ablation.single_frame else 0,
            keep_predictions=0 if ablation.single_frame else 1,
        )
        progress(f"== {ablation.group}: {ablation.label}")
        run_eval(pipeline, root, settings, run_options, out_dir, model_id=model_id, progress=False)
        keys[ablation.label] = config_key(model_id, settings, run_options)
    strategies = [a for a in study if a.group == "strategy"]
    figures = strategy_figures(root, out_dir, options, strategies, keys, figures_dir or out_dir)
    links = [os.path.relpath(f, link_from or out_dir) for f in figures]
    summary = [
        row for row in summarise(read_results(out_dir / "results.csv")) if row["config"] in keys.values()
    ]
    return section(root.name, summary, study, links)


def strategy_figures(
    root: Path,
    out_dir: Path,
    options: EvalOptions,
    strategies: list[Ablation],
    keys: dict[str, str],
    figures_dir: Path,
) -> list[Path]:
    """y-t slice (input and every strategy) and per-frame AbsRel curves of the first sequence."""
    path = list_sequences(root)[0]
    name = sequence_name(root, path)
    sequence, max_depth, _ = read_for_eval(path, options)
    predictions = {
        a.label: np.load(prediction_path(out_dir, keys[a.label], name))["depth"].astype(np.float32)
        for a in strategies
    }
    height, width = next(iter(predictions.values())).shape[1:]
    frames = np.stack([resize_rgb(frame, (height, width)) for frame in sequence.rgb])
    column = width // 2
    slices = {"input": yt_slice(frames, column)} | {
        label: yt_slice(p, column) for label, p in predictions.items()
    }
    # Per-frame AbsRel after the protocol's one scale and shift per video, as in the tables.
    mask = valid_mask(sequence.depth, max_depth)
    curves = {}
    for ablation in strategies:
        if not ablation.in_curves:
            continue
        full_size = resize_prediction(predictions[ablation.label], *sequence.depth.shape[1:])
        aligned = align_video(full_size, sequence.depth, mask, max_depth)
        curves[ablation.label] = per_frame_metrics(aligned, sequence.depth, mask)["abs_rel"]
    stem = root.name
    where = stem if name == stem else f"{stem}/{name}"
    figures_dir.mkdir(parents=True, exist_ok=True)
    return [
        temporal_profile(
            slices,
            figures_dir / f"{stem}_temporal_profile.png",
            title=f"{where}: column {column} over time",
            size_px=(1300, 230 * -(-len(slices) // 5)),
            per_row=5,
        ),
        metric_curves(
            curves,
            figures_dir / f"{stem}_abs_rel_per_frame.png",
            "AbsRel",
            title=f"{where}: AbsRel per frame (one scale and shift per video)",
            size_px=(1000, 500),
        ),
    ]


def section(dataset: str, summary: list[dict], study: list[Ablation], figures: list[str]) -> str:
    """The Markdown tables of one dataset, grouped as the papers group their ablations."""
    by_label = {row["label"]: row for row in summary}
    lines = [f"### {dataset}", ""]
    for group in ("strategy", "window", "steps", "single frame"):
        labels = [a.label for a in study if a.group == group]
        lines += [
            f"**{group}**",
            "",
            "| configuration | videos | AbsRel | δ1 | TAE | flicker | ms/frame |",
            "|---|---|---|---|---|---|---|",
        ]
        for label in labels:
            row = by_label.get(label)
            if row is None:
                continue
            lines.append(
                f"| {label} | {row['videos']} | {row['abs_rel']:.3f} | {row['delta1']:.3f} | "
                f"{_fmt(row['tae'], 3)} | {_fmt(row['flicker'], 4)} | {row['ms_per_frame']:.0f} |"
            )
        lines.append("")
    lines += [f"![{Path(link).stem}]({link})" for link in figures]
    return "\n".join(lines) + "\n"


def _fmt(value: float, digits: int) -> str:
    return "-" if np.isnan(value) else f"{value:.{digits}f}"


def write_report(path: Path, text: str) -> None:
    """Put ``text`` between the report markers of ``path``, keeping everything around them."""
    block = f"{REPORT_BEGIN}\n{text}{REPORT_END}\n"
    if path.exists() and REPORT_BEGIN in (current := path.read_text()) and REPORT_END in current:
        before, rest = current.split(REPORT_BEGIN, 1)
        after = rest.split(REPORT_END, 1)[1].lstrip("\n")
        block = before + block + after
    with atomic_file(path) as tmp:
        tmp.write_text(block)
