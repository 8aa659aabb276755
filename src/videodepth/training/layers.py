"""Spatial and temporal parameters of a diffusers spatio-temporal UNet, told apart by role.

In diffusers' SVD-style UNet every temporal computation lives in a module with one of these
names: ``SpatioTemporalResBlock.temporal_res_block`` (the temporal convolutions) and its
``time_mixer`` (the learned blend with the spatial path), and
``TransformerSpatioTemporalModel.temporal_transformer_blocks`` (attention across frames), its
``time_pos_embed`` (frame-index embedding) and ``time_mixer``. Everything else (spatial
res-blocks and transformers, conv in/out, time and added-time embeddings) is spatial: it runs
on each frame alone, so a single-frame model uses only those.
"""

from __future__ import annotations

import torch

TEMPORAL_MODULE_NAMES = frozenset(
    {"temporal_res_block", "temporal_transformer_blocks", "time_mixer", "time_pos_embed"}
)


def is_temporal(parameter_name: str) -> bool:
    return any(part in TEMPORAL_MODULE_NAMES for part in parameter_name.split("."))


def split_spatial_temporal(unet: torch.nn.Module) -> tuple[list[str], list[str]]:
    """Parameter names of ``unet`` as (spatial, temporal); together they are all parameters."""
    spatial, temporal = [], []
    for name, _ in unet.named_parameters():
        (temporal if is_temporal(name) else spatial).append(name)
    return spatial, temporal


def select_trainable(unet: torch.nn.Module, which: str) -> list[torch.nn.Parameter]:
    """Freeze everything but ``which`` ("all", "spatial" or "temporal"); return what trains."""
    if which not in ("all", "spatial", "temporal"):
        raise ValueError(f"unknown parameter group '{which}'; choose all, spatial or temporal")
    chosen = []
    for name, parameter in unet.named_parameters():
        trains = which == "all" or (which == "temporal") == is_temporal(name)
        parameter.requires_grad_(trains)
        if trains:
            chosen.append(parameter)
    return chosen
