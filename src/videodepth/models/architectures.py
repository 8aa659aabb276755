"""Model configurations: the small model we ship, SVD's full size, and tiny test sizes.

Every model is an instance of one family: a VAE (8x down-sampling, 4 latent channels) plus a
spatio-temporal UNet taking 8 channels (noisy depth latent + RGB latent), optionally with a
CLIP image encoder for cross-attention tokens.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

from videodepth.diffusion.schedules import svd_scheduler
from videodepth.models.unet import VideoDepthUNet


def unet_config(
    block_out_channels: tuple[int, ...],
    attention: tuple[bool, ...],
    heads: tuple[int, ...],
    cross_attention_dim: int,
    time_id_dim: int,
    layers_per_block: int = 1,
) -> dict:
    down = tuple("CrossAttnDownBlockSpatioTemporal" if a else "DownBlockSpatioTemporal" for a in attention)
    up = tuple(
        "CrossAttnUpBlockSpatioTemporal" if a else "UpBlockSpatioTemporal" for a in reversed(attention)
    )
    return {
        "in_channels": 8,
        "out_channels": 4,
        "down_block_types": down,
        "up_block_types": up,
        "block_out_channels": block_out_channels,
        "layers_per_block": layers_per_block,
        "cross_attention_dim": cross_attention_dim,
        "num_attention_heads": heads,
        "addition_time_embed_dim": time_id_dim,
        "projection_class_embeddings_input_dim": 3 * time_id_dim,
        "num_frames": 25,
    }


# Stable Video Diffusion img2vid-xt's UNet (about 1.5 B parameters).
SVD_UNET = unet_config((320, 640, 1280, 1280), (True, True, True, False), (5, 10, 20, 20), 1024, 256, 2)

# The small model we ship: sized so that a 2-core laptop CPU runs several frames per second.
SMALL_UNET = unet_config((32, 64, 64), (False, False, True), (1, 2, 2), 32, 32, 1)
SMALL_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (16, 32, 64, 64),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 16,
    "mid_block_add_attention": False,
    "scaling_factor": 0.18215,
}

# Tiny sizes for tests and parity runs: same code paths, random weights, milliseconds per call.
TINY_UNET = unet_config((32, 64), (True, True), (2, 4), 32, 8, 1)
TINY_VAE = {**SMALL_VAE, "block_out_channels": (8, 8, 16, 16), "norm_num_groups": 4}
TINY_TEMPORAL_VAE = {
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "block_out_channels": (32, 32, 32, 32),
    "layers_per_block": 1,
    "latent_channels": 4,
}
# SVD img2vid-xt's VAE (the class defaults are a single block).
SVD_TEMPORAL_VAE = {
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
}
TINY_CLIP = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 224,
    "patch_size": 32,
    "projection_dim": 32,
}
# CLIP ViT-H/14 vision tower of SVD img2vid-xt.
FULL_CLIP = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "projection_dim": 1024,
}


def build_unet(config: dict) -> VideoDepthUNet:
    return VideoDepthUNet(**config)


def build_vae(config: dict) -> AutoencoderKL:
    return AutoencoderKL(**config)


def build_temporal_vae(config: dict) -> AutoencoderKLTemporalDecoder:
    return AutoencoderKLTemporalDecoder(**config)


def build_clip(config: dict) -> tuple[CLIPVisionModelWithProjection, CLIPImageProcessor]:
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**config))
    processor = CLIPImageProcessor(
        crop_size=config["image_size"], size={"shortest_edge": config["image_size"]}
    )
    return encoder.eval(), processor


__all__ = [
    "FULL_CLIP",
    "SMALL_UNET",
    "SMALL_VAE",
    "SVD_TEMPORAL_VAE",
    "SVD_UNET",
    "TINY_CLIP",
    "TINY_TEMPORAL_VAE",
    "TINY_UNET",
    "TINY_VAE",
    "build_clip",
    "build_temporal_vae",
    "build_unet",
    "build_vae",
    "random_model",
    "svd_scheduler",
    "unet_config",
]


def random_model(family: str = "videodepth", size: str = "tiny", seed: int = 0):
    """A randomly initialised model of a family's layout, for tests, parity runs and speed
    benchmarks (speed does not depend on weight values). ``size`` is tiny, small or full."""
    from videodepth.models.bundle import DepthModel
    from videodepth.models.config import FAMILY_CONFIGS, DepthModelConfig

    torch.manual_seed(seed)
    published = family in FAMILY_CONFIGS
    unet = build_unet({"tiny": TINY_UNET, "small": SMALL_UNET, "full": SVD_UNET}[size])
    if published:
        vae = build_temporal_vae(TINY_TEMPORAL_VAE if size == "tiny" else SVD_TEMPORAL_VAE)
        clip = TINY_CLIP if size == "tiny" else FULL_CLIP
        encoder, extractor = build_clip({**clip, "projection_dim": unet.config.cross_attention_dim})
        config = FAMILY_CONFIGS[family]()
    else:
        vae = build_vae(TINY_VAE if size == "tiny" else SMALL_VAE)
        encoder = extractor = None
        config = DepthModelConfig(family=family)
    return DepthModel(
        vae=vae,
        unet=unet,
        scheduler=svd_scheduler(),
        config=config,
        image_encoder=encoder,
        feature_extractor=extractor,
    ).eval()
