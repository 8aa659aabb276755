"""Tiny training fixtures: a few rendered shards and a tiny-model config, made in tmp folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from videodepth.data.shards import write_shard
from videodepth.synth.render import render_clip
from videodepth.synth.scenes import SceneConfig


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a loaded machine spinning OpenMP threads made
    these tests several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shards")
    for i, (family, label) in enumerate(
        [("tabletop", "realistic"), ("indoor", "fine"), ("street", "realistic")]
    ):
        clip = render_clip(SceneConfig(family), 100 + i, 5, 40, 72, label=label)
        write_shard(clip, folder / f"{family}_{i}.npz")
    return folder


def tiny_config_values(shards: Path, out: Path, **changes) -> dict:
    values = {
        "name": "tiny",
        "task": "unet",
        "trainable": "all",
        "steps": 4,
        "seed": 3,
        "ema_decay": 0.9,
        "log_every": 1,
        "checkpoint_every": 2,
        "out": str(out),
        "model": {"init": "random", "size": "tiny", "seed": 0},
        "data": {
            "shards": [str(shards)],
            "size": [32, 64],
            "min_len": 1,
            "max_len": 3,
            "batch_size": 2,
            "workers": 0,
        },
        "objective": {"noise": "clip", "invalid": "fill_and_mask"},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
    }
    for key, value in changes.items():
        values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
    return values


def write_config(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path
