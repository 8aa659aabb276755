"""Speed and memory benchmarks.

Every measurement runs in a fresh Python process so that its peak RSS is its own. ``speed``
times encode / denoise / decode per frame over a grid of resolutions and clip lengths;
``memory`` streams videos of several lengths through the full file job (decode, inference,
disk buffer, writers) and compares their peak RSS: it must not grow with length.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from videodepth.argtypes import frame_size
from videodepth.errors import InputError

# Models the benchmark can build without any download (speed does not depend on weight values).
RANDOM_MODELS = {
    "tiny": ("videodepth", "tiny"),
    "small-random": ("videodepth", "small"),
    "depthcrafter-random": ("depthcrafter", "full"),
    "chronodepth-random": ("chronodepth", "full"),
}


@dataclass
class Measurement:
    model: str
    strategy: str
    height: int
    width: int
    frames: int
    steps: int
    device: str
    seconds: float
    encode_ms: float
    denoise_ms: float
    decode_ms: float
    tracking_ms: float
    fusion_ms: float
    fps: float
    peak_rss_mib: float
    peak_vram_mib: float | None


def parse_size(text: str) -> tuple[int, int]:
    try:
        return frame_size(text)
    except argparse.ArgumentTypeError as error:
        raise InputError(str(error)) from None


def synthetic_video(path: Path, frames: int, height: int, width: int, fps: int = 24) -> Path:
    """A textured pattern drifting over a gradient, encoded with PyAV (cheap to make, not to compress)."""
    from videodepth.io import RgbVideoWriter

    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (height, 2 * width, 3), dtype=np.uint8)
    with RgbVideoWriter(path, fps=fps) as writer:
        for index in range(frames):
            shift = (index * 3) % width
            writer.write_rgb(index, np.ascontiguousarray(texture[:, shift : shift + width]))
    return path


def _load_model(name: str):
    """A random model of a published layout (speed does not depend on weights), or a real one."""
    from videodepth.loading import load_model
    from videodepth.models.architectures import random_model

    if name in RANDOM_MODELS:
        family, size = RANDOM_MODELS[name]
        return random_model(family, size)
    return load_model(None if name == "default" else name)


def _child(job: dict) -> dict:
    """Runs inside the fresh process; prints one JSON line."""
    import torch

    from videodepth.geometry import GeometryOptions
    from videodepth.inference.runner import InputOptions, OutputOptions, run_video
    from videodepth.inference.settings import RunSettings
    from videodepth.loading import load_pipeline
    from videodepth.threads import resolve_threads

    torch.manual_seed(0)
    pipeline = load_pipeline(
        _load_model(job["model"]), device=job["device"], threads=resolve_threads(job.get("threads")), say=None
    )
    settings = RunSettings.for_model(pipeline.config, strategy=job["strategy"], steps=job["steps"])
    with tempfile.TemporaryDirectory() as out:
        report = run_video(
            pipeline,
            job["video"],
            settings,
            InputOptions(max_res=max(job["height"], job["width"]), process_length=job["frames"]),
            OutputOptions(out_dir=Path(out), kinds=tuple(job["save"]), size="processed"),
            progress=False,
            geometry=GeometryOptions() if job.get("geometry") else None,
        )
    per_frame = {k: 1000 * v / report.num_frames for k, v in report.stage_seconds.items()}
    return asdict(
        Measurement(
            model=job["model"],
            strategy=settings.strategy,
            height=report.size[0],
            width=report.size[1],
            frames=report.num_frames,
            steps=settings.steps,
            device=str(pipeline.device),
            seconds=report.seconds,
            encode_ms=per_frame.get("encode", 0.0),
            denoise_ms=per_frame.get("denoise", 0.0),
            decode_ms=per_frame.get("decode", 0.0),
            tracking_ms=per_frame.get("tracking", 0.0),
            fusion_ms=per_frame.get("fusion", 0.0),
            fps=report.num_frames / report.seconds,
            peak_rss_mib=report.peak_rss_mib,
            peak_vram_mib=report.peak_vram_mib,
        )
    )


def measure(job: dict) -> Measurement:
    result = subprocess.run(
        [sys.executable, "-m", "videodepth.eval.bench", json.dumps(job)], capture_output=True, text=True
    )
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"benchmark run failed: {tail}")
    return Measurement(**json.loads(result.stdout.strip().splitlines()[-1]))


def run_grid(
    model: str,
    sizes: list[tuple[int, int]],
    lengths: list[int],
    strategy: str | None,
    steps: int | None,
    device: str,
    save: tuple[str, ...],
    work: Path,
    progress=print,
    geometry: bool = False,
    video: Path | None = None,
    threads: int | None = None,
) -> list[Measurement]:
    """Every (size, length) in a fresh process; on ``video`` (its first frames, resized) or on a
    synthetic drifting texture; with ``geometry``, camera tracking and fusion are timed too."""
    results = []
    for height, width in sizes:
        source = video or synthetic_video(work / f"bench_{height}x{width}.mp4", max(lengths), height, width)
        for frames in lengths:
            job = {
                "model": model,
                "video": str(source),
                "frames": frames,
                "height": height,
                "width": width,
                "strategy": strategy,
                "steps": steps,
                "device": device,
                "save": list(save),
                "geometry": geometry,
                "threads": threads,
            }
            results.append(measure(job))
            progress(format_row(results[-1]))
    return results


COLUMNS = (
    "model",
    "strategy",
    "height",
    "width",
    "frames",
    "steps",
    "device",
    "encode_ms",
    "denoise_ms",
    "decode_ms",
    "tracking_ms",
    "fusion_ms",
    "fps",
    "seconds",
    "peak_rss_mib",
    "peak_vram_mib",
)


def _cell(value) -> str:
    if not isinstance(value, float):
        return str(value)
    # One decimal, but keep two significant digits for small values (0.026 frames/s on a CPU).
    return f"{value:.1f}" if abs(value) >= 0.1 or value == 0 else f"{value:.2g}"


def format_row(m: Measurement) -> str:
    return "| " + " | ".join(_cell(asdict(m)[c]) for c in COLUMNS) + " |"


def markdown_table(results: list[Measurement]) -> str:
    header = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)
    return "\n".join([header, *(format_row(m) for m in results)])


def write_csv(results: list[Measurement], path: Path) -> None:
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for m in results:
            writer.writerow({c: asdict(m)[c] for c in COLUMNS})


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
