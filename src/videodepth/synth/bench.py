"""Throughput measurements: rendering alone, on-the-fly DataLoader, and pre-rendered shards."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from videodepth.data.dataset import StepBatchSampler, StepKeyedShards, step_loader
from videodepth.data.shards import write_shard
from videodepth.synth.dataset import ProceduralDataset
from videodepth.synth.render import render_clip
from videodepth.synth.scenes import FAMILIES


def _loader_fps(loader: DataLoader, items: int, workers: int) -> float:
    frames, start = 0, None
    for n, batch in enumerate(loader):
        if n == workers:  # start the clock once every worker has produced its first item
            start, frames = time.perf_counter(), 0
        frames += int(batch["rgb"].shape[1])
        if n + 1 >= items + workers:
            break
    return frames / (time.perf_counter() - start)


def run_benchmark(height: int = 320, width: int = 640, clip_len: int = 24, items: int = 10, workers: int = 2,
                  shard_dir: str | Path | None = None, log=print) -> dict:  # fmt: skip
    torch.set_num_threads(1)
    results = {}
    start = time.perf_counter()
    for i, family in enumerate(FAMILIES):
        render_clip(family, 500 + i, clip_len, height, width)
    results["render_single_process_fps"] = len(FAMILIES) * clip_len / (time.perf_counter() - start)
    log(
        f"render, 1 process:            {results['render_single_process_fps']:.1f} frames/s ({height}x{width})"
    )
    procedural = ProceduralDataset(
        num_items=items + workers, size=(height, width), min_len=clip_len, max_len=clip_len
    )
    keys = [[(i, clip_len)] for i in range(len(procedural))]  # one clip per batch, in order
    loader = DataLoader(procedural, batch_sampler=keys, num_workers=workers, persistent_workers=False)
    results["procedural_loader_fps"] = _loader_fps(loader, items, workers)
    log(f"on-the-fly, {workers} workers:      {results['procedural_loader_fps']:.1f} frames/s")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(shard_dir or scratch)
        for i, family in enumerate(FAMILIES):
            write_shard(render_clip(family, 900 + i, 2 * clip_len, height, width), root / f"{family}.npz")
        shards = StepKeyedShards([root], (height, width))  # the training dataset, crop/resize included
        sampler = StepBatchSampler(
            0, items + workers, batch_size=1, grad_accum=1, min_len=clip_len, max_len=clip_len
        )
        results["shard_loader_fps"] = _loader_fps(step_loader(shards, sampler, workers), items, workers)
    log(f"shards, {workers} workers:          {results['shard_loader_fps']:.1f} frames/s")
    return results
