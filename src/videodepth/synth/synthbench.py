"""SynthBench: a fixed benchmark of rendered clips whose seeds never occur in training.

Split rule: benchmark seeds are ``BENCH_SEED_BASE + i`` (>= 10^9); every training seed is
drawn below 10^9 by :func:`training_seed`. The benchmark is 9 clips for each of the five
original families (45 clips; families added later stay out, so published numbers keep their meaning),
50-110 frames each (drawn from the seed), camera motions cycled so every family gets several,
``fine`` labels, at 256x448 by default, written in the RGB-D folder layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from videodepth.errors import InputError

BENCH_SEED_BASE = 1_000_000_000
CLIPS_PER_FAMILY = 9
BENCH_FAMILIES = ("indoor", "street", "terrain", "tabletop", "people")
DEFAULT_SIZE = (256, 448)


def is_benchmark_seed(seed: int) -> bool:
    return seed >= BENCH_SEED_BASE


def training_seed(base: int, epoch: int, index: int) -> int:
    """A training-split seed for one dataset item; always below BENCH_SEED_BASE."""
    mixed = np.random.default_rng([base, epoch, index]).integers(0, BENCH_SEED_BASE)
    return int(mixed)


@dataclass(frozen=True)
class BenchClip:
    name: str
    family: str
    seed: int
    num_frames: int
    camera_motion: str


def synthbench_spec(clips_per_family: int = CLIPS_PER_FAMILY) -> list[BenchClip]:
    motions = ("static", "pan", "handheld", "forward", "orbit", "zoom")
    spec = []
    for f, family in enumerate(BENCH_FAMILIES):
        for i in range(clips_per_family):
            seed = BENCH_SEED_BASE + 1000 * f + i
            frames = int(np.random.default_rng(seed).integers(50, 111))
            motion = motions[(i + f) % len(motions)]
            spec.append(BenchClip(f"{family}_{i:02d}", family, seed, frames, motion))
    return spec


def render_bench_clip(item: BenchClip, out: Path, height: int, width: int, clean: bool = False) -> Path:
    from videodepth.data.readers import write_rgbd_folder
    from videodepth.synth.render import render_clip
    from videodepth.synth.scenes import SceneConfig

    target = out / item.name
    if (target / "meta.json").is_file():  # resumable: finished clips are complete (atomic rename)
        if json.loads((target / "meta.json").read_text()).get("clean", False) != clean:
            raise InputError(
                f"{target} was rendered {'without' if clean else 'with'} --clean; use another --out or delete it"
            )
        return target
    clip = render_clip(
        SceneConfig(item.family, camera_motion=item.camera_motion),
        item.seed,
        item.num_frames,
        height,
        width,
        photographic=not clean,
    )
    from videodepth.data.clip import clip_to_sequence

    sequence = clip_to_sequence(clip)
    sequence.name = item.name
    sequence.extra |= {
        "family": item.family,
        "seed": item.seed,
        "camera_motion": item.camera_motion,
        "label": "fine",
        "clean": clean,
    }
    if item.camera_motion == "zoom":  # focal length changes per frame; K holds frame 0
        sequence.extra["K_frames"] = clip.K_frames.tolist()
    return write_rgbd_folder(sequence, target)


def _render_star(args: tuple) -> str:
    return str(render_bench_clip(*args))


def generate_synthbench(out: str | Path, height: int = DEFAULT_SIZE[0], width: int = DEFAULT_SIZE[1],
                        workers: int = 1, clips_per_family: int = CLIPS_PER_FAMILY, max_frames: int | None = None,
                        progress=None, clean: bool = False) -> list[Path]:  # fmt: skip
    """Render the benchmark into ``out`` (skipping clips already there). ``clean`` renders without
    the simulated camera (no blur, noise, vignetting or compression): the same scenes, cameras and
    depth, as a structure-from-motion pipeline would most like them."""
    import dataclasses

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = synthbench_spec(clips_per_family)
    if max_frames is not None:
        spec = [dataclasses.replace(s, num_frames=min(s.num_frames, max_frames)) for s in spec]
    jobs = [(item, out, height, width, clean) for item in spec]
    if workers <= 1:
        results = []
        for job in jobs:
            results.append(_render_star(job))
            if progress:
                progress(job[0].name)
        return [Path(r) for r in results]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        results = []
        for r in pool.imap(_render_star, jobs):
            results.append(Path(r))
            if progress:
                progress(Path(r).name)
    return results
