"""Training configuration: plain dataclasses, one YAML file per stage.

A YAML file mirrors :class:`TrainConfig`; sections are optional and unknown keys are errors
(a typo must not silently fall back to a default). ``--set section.key=value`` overrides any
field from the command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from videodepth.choices import SVD_HUB_ID
from videodepth.errors import InputError


@dataclass
class ModelSection:
    # "random" (fresh small/tiny model), "designed" (random UNet + the hand-set VAE of
    # training.designed_vae), "svd" (Stable Video Diffusion's weights from `base`, with the
    # conventions of `family`: where DepthCrafter and ChronoDepth start), or any model
    # DepthModel.from_pretrained loads: a folder of ours, or a published UNet (folder or hub id).
    init: str = "random"
    # For "svd" and published UNets: "depthcrafter" or "chronodepth" ("auto": from the UNet's name).
    family: str = "auto"
    base: str = SVD_HUB_ID  # SVD folder or hub id
    size: Literal["small", "tiny"] = "small"
    seed: int = 0
    # > 0: give a model without one a fresh DetailEncoder with this many output channels
    # (its UNet input widened with zero weights, so training starts from the loaded model), or
    # widen a narrower one to this size, keeping what it computes (models.detail_encoder).
    detail_channels: int = 0
    # The encoder's convolution widths (empty: DEFAULT_WIDTHS of models.detail_encoder for a fresh
    # one, as it is for a loaded one).
    detail_widths: list[int] = field(default_factory=list)


@dataclass
class DataSection:
    shards: list[str] = field(default_factory=list)  # folders or files of training shards
    size: tuple[int, int] = (128, 224)
    # Clip length: uniform in [min_len, max_len] per batch (one length per batch).
    min_len: int = 1
    max_len: int = 25
    batch_size: int = 1
    workers: int = 1
    max_zoom: float = 1.25
    # Augmentation: photometric jitter strength per clip (0 = off), random horizontal flips, and
    # the probability of turning a clip upside down (against the rendered cameras' level-horizon
    # layout prior; see TRAINING.md).
    colour_jitter: float = 0.0
    flip: bool = False
    vertical_flip: float = 0.0
    # Real video labelled by `videodepth data label` (geometry or stereo labels with a per-pixel
    # confidence): each batch is drawn from these shards with probability real_fraction, else
    # from `shards` (keyed by the step, so resume stays exact; 0 = today's batches exactly).
    real_shards: list[str] = field(default_factory=list)
    real_fraction: float = 0.0
    # Clips kept for evaluation (by name, as `videodepth data label` names their shards): training
    # refuses to start if any of them is among its shards.
    held_out: list[str] = field(default_factory=list)
    # Crop a clip taller than wide to data.size turned upright (sides swapped), as inference sees
    # it whole; otherwise a portrait phone clip is trained on as landscape bands at 1.4x its
    # scale, which does not carry over to the whole frame (TRAINING.md, session 15). Batches of
    # one clip only, since the shapes then differ from clip to clip.
    match_orientation: bool = False


@dataclass
class ObjectiveSection:
    p_mean: float = 0.7  # ln sigma ~ N(p_mean, p_std^2), SVD's training distribution
    p_std: float = 1.6
    # "clip": one sigma per clip (DepthCrafter); "frame": one per frame (ChronoDepth).
    noise: Literal["clip", "frame"] = "clip"
    # Fraction of draws set to the model's sampling sigma_max instead (objective.draw_sigmas):
    # trains the noise level where a few-step sampler does most of its work.
    sigma_max_fraction: float = 0.0
    # > 0: add this times the error after aligning each clip's prediction to its target by
    # least-squares scale and shift (objective.align_scale_shift), as evaluation does.
    scale_shift_weight: float = 0.0
    # "far": invalid pixels stay at -1 (the far end) and count in the loss (right for sky);
    # "fill_and_mask": nearest-valid fill before encoding, loss weighted by each latent cell's
    # valid-pixel fraction (right for stereo holes); "by_label": "far" for fine-label clips (their
    # only holes are sky) and "fill_and_mask" for realistic ones, so mixed data still learns sky.
    invalid: Literal["far", "fill_and_mask", "by_label"] = "far"
    # "vae": encode with the model's VAE; "designed": the closed form of the designed VAE's
    # encoder (same latents to ~1e-4, much faster; only valid for a designed, untrained VAE).
    encoder: Literal["vae", "designed"] = "vae"
    # VAE stage: reconstruction L1 + L2 on RGB and depth, plus kl_weight * KL.
    kl_weight: float = 1e-6


@dataclass
class OptimSection:
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    grad_accum: int = 1
    # Recompute the UNet's activations in the backward pass: less memory for more compute (what
    # makes SVD's 1.5 B-parameter UNet fit long clips at 320x640 on one GPU).
    gradient_checkpointing: bool = False


@dataclass
class ValidationSection:
    synthbench: str = ""  # RGB-D folder of SynthBench clips; empty = no validation
    clips: int = 3
    frames: int = 24
    every: int = 0  # steps between validations; 0 = only at the end
    steps: int = 4


@dataclass
class TrainConfig:
    name: str = "stage"
    # "unet": diffusion training of the UNet (VAE frozen); "vae": autoencoder reconstruction.
    task: Literal["unet", "vae"] = "unet"
    # Which UNet parameters train: all, spatial or temporal (see training.layers).
    trainable: Literal["all", "spatial", "temporal"] = "all"
    steps: int = 100
    # Wall-clock budget: stop early (checkpoint, validate, save) after this many minutes; 0 = none.
    max_minutes: float = 0.0
    seed: int = 0
    mixed_precision: Literal["no", "fp16", "bf16"] = "bf16"  # used on GPU only
    ema_decay: float = 0.999
    checkpoint_every: int = 0  # 0 = only at the end
    log_every: int = 10
    out: str = "runs/stage"
    # Inference defaults written into the saved model (DepthModelConfig fields), checked on load as
    # the settings of a run of that model (_check_inference).
    inference: dict = field(default_factory=dict)
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    objective: ObjectiveSection = field(default_factory=ObjectiveSection)
    optim: OptimSection = field(default_factory=OptimSection)
    validation: ValidationSection = field(default_factory=ValidationSection)


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise InputError(f"{where}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(fields)}")
    kwargs = {}
    for key, value in values.items():
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value, f"{where}.{key}")
        elif isinstance(default, tuple):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = _coerce(value, default, f"{where}.{key}")
    return cls(**kwargs)


def _coerce(value: Any, default: Any, where: str) -> Any:
    """YAML reads ``3e-5`` as a string (no dot) and ``1`` as an int; numbers follow the default's type."""
    if isinstance(default, float) and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InputError(f"{where}: expected a number, got {value!r}") from None
    if (
        isinstance(default, int)
        and not isinstance(default, bool)
        and isinstance(value, float)
        and value.is_integer()
    ):
        return int(value)
    return value


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """``["optim.lr=3e-5", "steps=10"]`` applied to a nested mapping."""
    for item in overrides:
        if "=" not in item:
            raise InputError(f"--set expects section.key=value, got '{item}'")
        dotted, text = item.split("=", 1)
        target = values
        *parents, last = dotted.strip().split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = _parse_value(text)
    return values


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"training config not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        first = str(error).strip().splitlines()[0]
        raise InputError(f"{path}: not valid YAML ({first})") from None
    values = apply_overrides(values, overrides or [])
    config = _build(TrainConfig, values, path.name)
    _check(config, path.name)
    _check_inference(config, path.name)
    return config


def _check(config: TrainConfig, where: str) -> None:
    if config.steps < 1:
        raise InputError(f"{where}: steps must be at least 1")
    if not 1 <= config.data.min_len <= config.data.max_len:
        raise InputError(f"{where}: data needs 1 <= min_len <= max_len")
    height, width = config.data.size
    if height % 32 or width % 32:
        raise InputError(f"{where}: data.size sides must be multiples of 32, got {height}x{width}")
    if not 0.0 <= config.data.colour_jitter <= 1.0:
        raise InputError(f"{where}: data.colour_jitter must be in [0, 1], got {config.data.colour_jitter}")
    if not 0.0 <= config.data.vertical_flip <= 1.0:
        raise InputError(f"{where}: data.vertical_flip must be in [0, 1], got {config.data.vertical_flip}")
    real_shards, real_fraction = config.data.real_shards, config.data.real_fraction
    if not isinstance(real_shards, list) or not all(isinstance(p, str) for p in real_shards):
        raise InputError(f"{where}: data.real_shards must be a list of folders or files, got {real_shards!r}")
    if not 0.0 <= real_fraction <= 1.0:
        raise InputError(f"{where}: data.real_fraction must be in [0, 1], got {real_fraction}")
    if real_fraction > 0 and not real_shards:
        raise InputError(
            f"{where}: data.real_fraction {real_fraction:g} needs data.real_shards (folders of labelled real video)"
        )
    if not 0.0 <= config.objective.sigma_max_fraction <= 1.0:
        raise InputError(
            f"{where}: objective.sigma_max_fraction must be in [0, 1], "
            f"got {config.objective.sigma_max_fraction}"
        )
    if config.optim.grad_accum < 1 or config.data.batch_size < 1:
        raise InputError(f"{where}: batch_size and grad_accum must be at least 1")
    if config.data.match_orientation and config.data.batch_size != 1:
        raise InputError(
            f"{where}: data.match_orientation needs data.batch_size 1 (portrait and landscape crops "
            f"differ in shape), got {config.data.batch_size}; use optim.grad_accum for larger batches"
        )
    if config.model.init in ("random", "designed") and config.model.family != "auto":
        raise InputError(
            f"{where}: model.family applies to model.init svd or a published UNet, "
            f"not to init {config.model.init}"
        )


def _check_inference(config: TrainConfig, where: str) -> None:
    """``inference`` becomes the trained model's defaults (``dataclasses.replace`` of its
    DepthModelConfig, training.trainer.model_with_ema) and then the settings of every run of it:
    a misspelt key or a value no run could use fails here, in one line, not after training.
    Values are checked as a RunSettings for the model the stage starts from where that is known
    now (init random, designed, svd, or a model folder that already exists), else for the defaults."""
    from videodepth.models.config import DepthModelConfig

    inference = config.inference
    if not isinstance(inference, dict):
        raise InputError(f"{where}.inference: expected a mapping, got {type(inference).__name__}")
    known = [f.name for f in dataclasses.fields(DepthModelConfig)]
    unknown = sorted(set(inference) - set(known))
    if unknown:
        raise InputError(
            f"{where}.inference: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(known)}"
        )
    if not inference:
        return
    defaults = DepthModelConfig()
    for key, value in inference.items():
        if isinstance(getattr(defaults, key), float) and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            raise InputError(f"{where}.inference.{key}: expected a number, got {value!r}")
    from videodepth.inference.settings import RunSettings

    try:
        RunSettings.for_model(dataclasses.replace(_starting_model_config(config.model), **inference))
    except InputError as error:
        raise InputError(f"{where}.inference: {error}") from None


def _starting_model_config(section: ModelSection):
    """The DepthModelConfig of the model ``section`` starts from, as far as it is known before loading it."""
    from videodepth.models.config import CONFIG_NAME, FAMILY_CONFIGS, DepthModelConfig

    if section.init in ("random", "designed"):
        return DepthModelConfig(family="videodepth")  # models.architectures.random_model
    if section.init != "svd" and Path(section.init, CONFIG_NAME).is_file():
        try:
            return DepthModelConfig.load(section.init)
        except (OSError, ValueError, TypeError):
            pass  # loading the model reports it
    family = (
        section.family
        if section.family != "auto"
        else next((name for name in FAMILY_CONFIGS if name in section.init.lower()), None)
    )
    return FAMILY_CONFIGS[family]() if family in FAMILY_CONFIGS else DepthModelConfig()
