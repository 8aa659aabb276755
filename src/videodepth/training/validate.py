"""Validation on SynthBench clips with the DepthCrafter protocol (one scale and shift per video).

UNet stages run the full pipeline (the model's own inference defaults) and report AbsRel,
delta1 and TAE (with per-frame intrinsics on clips whose camera zooms).
The VAE stage reports how well depth survives an encode/decode round trip (AbsRel of the
reconstruction against the ground truth, same protocol) and the RGB reconstruction L1.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from videodepth.data.readers import list_sequences, read_sequence
from videodepth.eval.metrics import evaluate_video
from videodepth.models.bundle import DepthModel


def pick_sequences(root: str | Path, count: int) -> list[Path]:
    """``count`` sequences spread evenly over the sorted list (so every family appears)."""
    paths = list_sequences(root)
    if count >= len(paths):
        return paths
    picks = np.linspace(0, len(paths) - 1, count).round().astype(int)
    return [paths[i] for i in picks]


def _metrics(prediction: np.ndarray, sequence) -> dict[str, float]:
    K, poses = sequence.tae_camera()
    return evaluate_video(prediction, sequence.depth, sequence.max_depth, K=K, poses_c2w=poses)


@torch.no_grad()
def _vae_round_trip(model: DepthModel, sequence) -> tuple[np.ndarray, float]:
    from videodepth.data.dataset import normalised_disparity

    vae = model.vae
    disparity, _ = normalised_disparity(sequence.depth, sequence.valid)
    depth3 = torch.from_numpy(disparity)[:, None].repeat(1, 3, 1, 1)
    decoded = vae.decode(vae.encode(depth3).latent_dist.mode()).sample.clamp(-1, 1).mean(dim=1)
    rgb = torch.from_numpy(sequence.rgb).permute(0, 3, 1, 2).float() / 127.5 - 1
    rgb_error = (vae.decode(vae.encode(rgb).latent_dist.mode()).sample - rgb).abs().mean().item()
    return ((decoded + 1) / 2).numpy(), rgb_error


def validate_model(
    model: DepthModel,
    root: str | Path,
    clips: int,
    frames: int,
    steps: int,
    task: str = "unet",
    input_size: tuple[int, int] | None = None,
    blank_input: bool = False,
    device: str | torch.device = "cpu",
    **settings,
) -> dict[str, float]:
    """Mean metrics over ``clips`` SynthBench clips cut to ``frames`` frames. ``input_size`` (H, W)
    resizes the frames before the pipeline (e.g. to the resolution ``videodepth run`` would use);
    the prediction is compared at the ground truth's size. ``blank_input`` replaces every frame by
    uniform grey: the gap between the two scores is what the model gets from the image. Training
    validates on its own device (a GPU run would wait hours for SVD-size models on the CPU)."""
    from videodepth.loading import load_pipeline

    pipeline = load_pipeline(model, device=device, say=None) if task == "unet" else None
    rows = []
    for path in pick_sequences(root, clips):
        sequence = read_sequence(path, max_frames=frames)
        if pipeline is None:
            prediction, rgb_l1 = _vae_round_trip(model, sequence)
            rows.append({**_metrics(prediction, sequence), "rgb_l1": rgb_l1})
        else:
            rgb = np.full_like(sequence.rgb, 128) if blank_input else sequence.rgb
            if input_size is not None:
                rgb = np.stack([cv2.resize(f, input_size[::-1], interpolation=cv2.INTER_LINEAR) for f in rgb])
            prediction = pipeline(rgb, steps=steps, seed=0, **settings)
            rows.append(_metrics(prediction, sequence))
    keys = [k for k in ("abs_rel", "delta1", "tae", "rgb_l1") if any(k in row for row in rows)]
    return {k: float(np.mean([row[k] for row in rows if k in row])) for k in keys}
