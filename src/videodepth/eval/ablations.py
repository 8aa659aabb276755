"""Our reproduction of the papers' ablations with one model, written to a Markdown report.

Every configuration is one ``run_eval`` over the same sequences (results accumulate in one CSV,
so an interrupted run continues where it stopped); the report groups them as the papers do:
long-video strategies, window length, number of denoising steps, and single-frame evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from videodepth.eval.runner import EvalOptions, markdown, read_results, run_eval, summarise
from videodepth.inference.engine import RunSettings
from videodepth.inference.pipeline import VideoDepthPipeline


@dataclass(frozen=True)
class Ablation:
    group: str
    label: str
    settings: dict = field(default_factory=dict)
    single_frame: bool = False


def ablations(window: int) -> list[Ablation]:
    """The study, for a model whose natural window is ``window`` frames."""
    half, quarter = window // 2, max(1, window // 4)
    study = [
        Ablation("strategy", "naive", {"strategy": "naive", "context": half}),
        Ablation("strategy", "replacement", {"strategy": "replacement", "context": half}),
        Ablation("strategy", "depthcrafter, no noise init, average blend",
                 {"strategy": "depthcrafter", "overlap": quarter, "noise_init": False, "blend": "average"}),
        Ablation("strategy", "depthcrafter, noise init, average blend",
                 {"strategy": "depthcrafter", "overlap": quarter, "blend": "average"}),
        Ablation("strategy", "depthcrafter, no noise init, linear blend",
                 {"strategy": "depthcrafter", "overlap": quarter, "noise_init": False}),
        Ablation("strategy", "depthcrafter (full)", {"strategy": "depthcrafter", "overlap": quarter}),
    ]
    for context in sorted({quarter, half, window - quarter}):
        study.append(Ablation("strategy", f"chronodepth, context {context}",
                              {"strategy": "chronodepth", "context": context}))
    for sigma_epsilon in (-6.0, -4.0, -2.0):
        study.append(Ablation("strategy", f"chronodepth, c_noise(context) {sigma_epsilon:g}",
                              {"strategy": "chronodepth", "context": half, "sigma_epsilon": sigma_epsilon}))
    for length in sorted({half, window, 2 * window}):
        study.append(Ablation("window", f"depthcrafter, window {length}",
                              {"strategy": "depthcrafter", "window": length, "overlap": max(1, length // 4)}))
    for steps in (1, 2, 4, 8):
        study.append(Ablation("steps", f"{steps} steps", {"steps": steps}))
    study.append(Ablation("single frame", "each frame alone (NYU-style)", {"strategy": "single"}, True))
    return study


def run_ablations(
    pipeline: VideoDepthPipeline, root: Path, out_dir: Path, options: EvalOptions, model_id: str,
    seed: int = 42, progress=print,
) -> str:
    """Runs every ablation on ``root``; returns the Markdown tables."""
    base = RunSettings.for_model(pipeline.config, seed=seed)
    for ablation in ablations(base.window):
        settings = replace(base, **ablation.settings)
        run_options = replace(options, label=f"{ablation.group}: {ablation.label}",
                              single_frame_stride=10 if ablation.single_frame else 0)
        progress(f"== {run_options.label}")
        run_eval(pipeline, root, settings, run_options, out_dir, model_id=model_id, progress=False)
    return markdown(summarise(read_results(out_dir / "results.csv")))
