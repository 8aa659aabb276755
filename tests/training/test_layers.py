"""Spatial/temporal parameter split on SVD's real UNet config (no memory allocated) and ours."""

from __future__ import annotations

import pytest
from accelerate import init_empty_weights

from videodepth.models.architectures import SMALL_UNET, SVD_UNET, TINY_UNET, build_unet
from videodepth.training.layers import select_trainable, split_spatial_temporal

SVD_KNOWN = {
    "conv_in.weight": "spatial",
    "time_embedding.linear_1.weight": "spatial",
    "add_embedding.linear_2.bias": "spatial",
    "down_blocks.0.resnets.0.spatial_res_block.conv1.weight": "spatial",
    "down_blocks.0.resnets.0.temporal_res_block.conv1.weight": "temporal",
    "down_blocks.0.resnets.0.time_mixer.mix_factor": "temporal",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight": "spatial",
    "down_blocks.0.attentions.0.temporal_transformer_blocks.0.attn1.to_q.weight": "temporal",
    "down_blocks.0.attentions.0.time_pos_embed.linear_1.weight": "temporal",
    "down_blocks.0.attentions.0.time_mixer.mix_factor": "temporal",
    "down_blocks.0.attentions.0.proj_in.weight": "spatial",
    "mid_block.attentions.0.temporal_transformer_blocks.0.ff.net.2.weight": "temporal",
    "up_blocks.3.resnets.2.temporal_res_block.conv2.weight": "temporal",
    "conv_out.weight": "spatial",
}


@pytest.fixture(scope="module")
def svd_unet():
    with init_empty_weights():  # 1.5 B parameters on the meta device: names only
        return build_unet(SVD_UNET)


def _check_partition(unet, spatial, temporal):
    names = [name for name, _ in unet.named_parameters()]
    assert spatial and temporal
    assert not set(spatial) & set(temporal)
    assert sorted(spatial + temporal) == sorted(names)


def test_svd_split_is_a_partition_with_known_names(svd_unet):
    spatial, temporal = split_spatial_temporal(svd_unet)
    _check_partition(svd_unet, spatial, temporal)
    for name, side in SVD_KNOWN.items():
        assert name in (spatial if side == "spatial" else temporal), name
    sizes = dict((n, p.numel()) for n, p in svd_unet.named_parameters())
    # SVD adds its temporal layers to an image UNet: a minority of the weights, but a real share.
    share = sum(sizes[n] for n in temporal) / sum(sizes.values())
    assert 0.2 < share < 0.5


@pytest.mark.parametrize("config", [SMALL_UNET, TINY_UNET], ids=["small", "tiny"])
def test_our_split_is_a_partition(config):
    unet = build_unet(config)
    spatial, temporal = split_spatial_temporal(unet)
    _check_partition(unet, spatial, temporal)
    assert "down_blocks.0.resnets.0.temporal_res_block.conv1.weight" in temporal
    assert "down_blocks.0.resnets.0.spatial_res_block.conv1.weight" in spatial


def test_select_trainable_freezes_the_other_side():
    unet = build_unet(TINY_UNET)
    spatial, temporal = split_spatial_temporal(unet)
    for which, expected in (("temporal", temporal), ("spatial", spatial), ("all", spatial + temporal)):
        chosen = select_trainable(unet, which)
        assert sorted(n for n, p in unet.named_parameters() if p.requires_grad) == sorted(expected)
        assert len(chosen) == len(expected)
    with pytest.raises(ValueError, match="unknown parameter group"):
        select_trainable(unet, "mixer")
