"""Two CPU processes (torchrun, gloo) train a tiny model for a few steps through the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from videodepth.models.bundle import DepthModel
from videodepth.training.trainer import latest_checkpoint

from .conftest import tiny_config_values, write_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _svd_family_values(tmp_path, tiny_shards) -> dict:
    """Temporal layers of a tiny model in SVD's layout, DepthCrafter's CLIP conditioning, and
    gradient checkpointing: the combination a GPU run of configs/svd/depthcrafter_stage2.yaml uses."""
    from videodepth.models.architectures import random_model

    random_model("depthcrafter", seed=5).save_published_layout(tmp_path / "svd" / "unet", tmp_path / "svd")
    values = tiny_config_values(
        tiny_shards, tmp_path / "run", steps=2, trainable="temporal", optim={"gradient_checkpointing": True}
    )
    values["model"] = {"init": "svd", "base": str(tmp_path / "svd"), "family": "depthcrafter"}
    return values


@pytest.mark.parametrize("setup", ["ours", "svd_family"])
def test_two_process_gloo_run(tmp_path, tiny_shards, setup):
    values = (
        tiny_config_values(tiny_shards, tmp_path / "run", steps=2)
        if setup == "ours"
        else _svd_family_values(tmp_path, tiny_shards)
    )
    path = write_config(tmp_path / "c.yaml", values)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "videodepth",
        "train",
        str(path),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("model written to") == 1
    state = json.loads((latest_checkpoint(tmp_path / "run") / "trainer_state.json").read_text())
    assert state == {"step": 2, "num_processes": 2}
    model = DepthModel.from_pretrained(tmp_path / "run" / "model")
    assert all(torch.isfinite(p).all() for p in model.unet.parameters())
