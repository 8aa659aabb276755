"""What distinguishes one checkpoint family from another, beyond its weights.

Published checkpoints share SVD's architecture but differ in how they were conditioned and
sampled; these settings travel with a model (``videodepth.json`` in our format) so that the
pipeline runs every family the way it was trained.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CONFIG_NAME = "videodepth.json"


@dataclass
class SamplingDefaults:
    """How a model is sampled unless the user says otherwise (see inference.strategies)."""

    strategy: str = "depthcrafter"
    steps: int = 5
    guidance: float = 1.0
    window: int = 24
    overlap: int = 8
    context: int = 5
    sigma_epsilon: float = -4.0
    decode_chunk_size: int = 8


@dataclass
class DepthModelConfig(SamplingDefaults):
    family: str = "videodepth"
    # Order of the channel concatenation fed to the UNet.
    concat_order: Literal["depth_first", "rgb_first"] = "depth_first"
    # How RGB frames become conditioning latents: the posterior mode as SVD does ("mode"),
    # or mode/sample multiplied by the VAE scaling factor.
    rgb_latents: Literal["mode", "mode_scaled", "sample_scaled"] = "mode_scaled"
    # Cross-attention tokens: CLIP of each frame, CLIP of a black frame, or zeros (no encoder).
    image_conditioning: Literal["clip", "clip_of_zeros", "none"] = "none"
    # SVD's "added time ids" and the std of the Gaussian noise added to RGB before encoding.
    fps_id: int = 7
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.0
    # DepthCrafter clamps each decoded channel to [-1, 1] before averaging; ChronoDepth averages first.
    clamp_before_channel_mean: bool = True
    # ChronoDepth v1's sampler quirk, see videodepth.diffusion.samplers.sample_euler_prescaled.
    prescale_state: bool = False
    # Longest side of the processing resolution by default.
    max_res: int = 448
    # A warning shown loudly before a run (e.g. that the weights are untrained).
    notice: str = ""
    # One quiet line shown whenever the model runs: what it is and what it is not good for.
    note: str = ""
    # Padding of the VAE decoder's convolutions. "replicate" for the designed VAE, whose smoothing
    # filters with zero padding pull the outermost pixels towards mid-depth (a bright rim on far
    # borders); "zeros" is how every published VAE was trained.
    vae_decoder_padding: Literal["zeros", "replicate"] = "zeros"
    # The most sampling steps measured to help this model; more were measured to be worse, so
    # asking for more gets a warning (0 = no known limit, e.g. the published checkpoints).
    max_helpful_steps: int = 0

    def steps_warning(self, steps: int) -> str:
        """A one-line warning when ``steps`` exceeds what this model was measured to benefit from."""
        if 0 < self.max_helpful_steps < steps:
            return (
                f"{steps} steps asked for, but this model scored worse with more than "
                f"{self.max_helpful_steps} (max_helpful_steps in its videodepth.json)"
            )
        return ""

    def save(self, folder: str | Path) -> None:
        Path(folder, CONFIG_NAME).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> DepthModelConfig:
        values = json.loads(Path(folder, CONFIG_NAME).read_text())
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


def depthcrafter_config() -> DepthModelConfig:
    """DepthCrafter v1.0.1 as its reference pipeline runs it."""
    return DepthModelConfig(
        family="depthcrafter",
        concat_order="depth_first",
        rgb_latents="mode",
        image_conditioning="clip",
        fps_id=7,
        motion_bucket_id=127,
        noise_aug_strength=0.02,
        clamp_before_channel_mean=True,
        prescale_state=False,
        strategy="depthcrafter",
        steps=5,
        guidance=1.0,
        window=110,
        overlap=25,
        max_res=1024,
        decode_chunk_size=8,
    )


def chronodepth_config() -> DepthModelConfig:
    """ChronoDepth v1 as its reference script runs it (fps 7 -> id 6, no noise augmentation)."""
    return DepthModelConfig(
        family="chronodepth",
        concat_order="rgb_first",
        rgb_latents="sample_scaled",
        image_conditioning="clip_of_zeros",
        fps_id=6,
        motion_bucket_id=127,
        noise_aug_strength=0.0,
        clamp_before_channel_mean=False,
        prescale_state=True,
        strategy="chronodepth",
        steps=5,
        guidance=1.0,
        window=10,
        overlap=0,
        context=5,
        sigma_epsilon=-4.0,
        max_res=1024,
        decode_chunk_size=8,
    )


FAMILY_CONFIGS = {"depthcrafter": depthcrafter_config, "chronodepth": chronodepth_config}
