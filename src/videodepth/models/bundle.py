"""A depth model: VAE + spatio-temporal UNet + scheduler (+ optional CLIP encoder) and the
family settings, loadable from three layouts:

- ours, written by :meth:`DepthModel.save_pretrained`: one folder with ``vae/``, ``unet/``,
  ``scheduler/``, optional ``image_encoder/``, ``feature_extractor/`` and ``detail_encoder/``,
  and ``videodepth.json``;
- DepthCrafter: its UNet folder (``tencent/DepthCrafter``) plus SVD img2vid-xt for the rest;
- ChronoDepth: its UNet folder (``jhshao/ChronoDepth-v1``) plus SVD img2vid-xt.

Local folders and Hugging Face hub ids are both accepted; offline, a missing model gives one
message naming what to download and where to put it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

from videodepth.choices import SVD_HUB_ID
from videodepth.errors import CheckpointError
from videodepth.io.atomic import atomic_dir
from videodepth.models.config import CONFIG_NAME, FAMILY_CONFIGS, DepthModelConfig
from videodepth.models.detail_encoder import DetailEncoder
from videodepth.models.unet import VideoDepthUNet

PUBLISHED_UNETS = {"depthcrafter": "tencent/DepthCrafter", "chronodepth": "jhshao/ChronoDepth-v1"}
VAE_CLASSES = {"AutoencoderKL": AutoencoderKL, "AutoencoderKLTemporalDecoder": AutoencoderKLTemporalDecoder}
SVD_PARTS = ("vae", "scheduler", "image_encoder", "feature_extractor")


def set_decoder_padding(vae: torch.nn.Module, mode: str) -> None:
    """Pad every spatial convolution of ``vae``'s decoder with ``mode`` ("zeros" or "replicate").
    Padding is not part of a diffusers config, so a model's ``vae_decoder_padding`` setting is
    applied here whenever a :class:`DepthModel` is built."""
    if mode not in ("zeros", "replicate"):
        raise CheckpointError(f"vae_decoder_padding must be 'zeros' or 'replicate', not {mode!r}")
    for module in vae.decoder.modules():
        if isinstance(module, torch.nn.Conv2d) and module.kernel_size != (1, 1):
            module.padding_mode = mode


@dataclass
class DepthModel:
    vae: AutoencoderKL | AutoencoderKLTemporalDecoder
    unet: VideoDepthUNet
    scheduler: EulerDiscreteScheduler
    config: DepthModelConfig = field(default_factory=DepthModelConfig)
    image_encoder: CLIPVisionModelWithProjection | None = None
    feature_extractor: CLIPImageProcessor | None = None
    # Learned detail features appended to the RGB latents (the small model; see detail_encoder).
    detail_encoder: DetailEncoder | None = None

    def __post_init__(self) -> None:
        set_decoder_padding(self.vae, self.config.vae_decoder_padding)

    def modules(self) -> list[torch.nn.Module]:
        return [m for m in (self.vae, self.unet, self.image_encoder, self.detail_encoder) if m is not None]

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> DepthModel:
        for module in self.modules():
            # Casting only when needed keeps diffusers from warning about fp32-pinned modules.
            if dtype is not None and module.dtype != dtype:
                module.to(dtype=dtype)
            if device is not None:
                module.to(device=device)
        return self

    def eval(self) -> DepthModel:
        for module in self.modules():
            module.eval().requires_grad_(False)
        return self

    def save_pretrained(self, folder: str | Path) -> None:
        """Write our one-folder format atomically (safetensors weights)."""
        with atomic_dir(folder) as staging:
            self.vae.save_pretrained(staging / "vae", safe_serialization=True)
            self.unet.save_pretrained(staging / "unet", safe_serialization=True)
            self.scheduler.save_pretrained(staging / "scheduler")
            if self.image_encoder is not None:
                self.image_encoder.save_pretrained(staging / "image_encoder", safe_serialization=True)
            if self.feature_extractor is not None:
                self.feature_extractor.save_pretrained(staging / "feature_extractor")
            if self.detail_encoder is not None:
                self.detail_encoder.save_pretrained(staging / "detail_encoder", safe_serialization=True)
            self.config.save(staging)

    def save_published_layout(self, unet_folder: str | Path, svd_folder: str | Path) -> None:
        """Write the layout of the published checkpoints: a UNet folder as on the hub plus an
        SVD-style folder with vae/, image_encoder/, feature_extractor/ and scheduler/ (used to
        test loading and to run reference implementations side by side on tiny models)."""
        unet_folder, svd_folder = Path(unet_folder), Path(svd_folder)
        self.unet.save_pretrained(unet_folder, safe_serialization=True)
        config_file = unet_folder / "config.json"
        config = json.loads(config_file.read_text())
        config["_class_name"] = "UNetSpatioTemporalConditionModel"
        config_file.write_text(json.dumps(config, indent=2))
        self.vae.save_pretrained(svd_folder / "vae", safe_serialization=True)
        self.scheduler.save_pretrained(svd_folder / "scheduler")
        if self.image_encoder is not None:
            self.image_encoder.save_pretrained(svd_folder / "image_encoder", safe_serialization=True)
            self.feature_extractor.save_pretrained(svd_folder / "feature_extractor")

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path,
        family: str = "auto",
        base: str | Path = SVD_HUB_ID,
        dtype: torch.dtype = torch.float32,
    ) -> DepthModel:
        root = resolve(model, what="model")
        if (root / CONFIG_NAME).exists():
            return _load_ours(root, dtype)
        if _is_unet_folder(root):
            family = _published_family(str(model), family)
            return _load_published(root, family, resolve(base, what="SVD base", parts=SVD_PARTS), dtype)
        raise CheckpointError(
            f"{model}: not a videodepth model folder (no {CONFIG_NAME}) nor a UNet folder "
            "(config.json of a UNetSpatioTemporalConditionModel)"
        )

    @classmethod
    def from_svd(
        cls, base: str | Path = SVD_HUB_ID, family: str = "depthcrafter", dtype: torch.dtype = torch.float32
    ) -> DepthModel:
        """Stable Video Diffusion's own weights (``base``: a hub id or a folder with ``unet/``,
        ``vae/``, ``image_encoder/``, ``feature_extractor/``, ``scheduler/``) set up with a published
        family's conventions: where both papers start training (``videodepth train`` with
        ``model.init: svd``). SVD img2vid's UNet already takes 8 input channels, noisy latents and
        image latents, so depth training needs no change of architecture."""
        if family not in FAMILY_CONFIGS:
            raise CheckpointError(
                f"training from SVD needs a published family ({' or '.join(FAMILY_CONFIGS)}), not '{family}'"
            )
        root = resolve(base, what="SVD base", parts=(*SVD_PARTS, "unet"))
        if not _is_unet_folder(root / "unet"):
            raise CheckpointError(
                f"SVD base {base}: no unet/ folder with a UNetSpatioTemporalConditionModel config "
                "(training from SVD needs its unet/, which running a published UNet does not)"
            )
        return _load_published(root / "unet", family, root, dtype)


def resolve(source: str | Path, what: str, parts: tuple[str, ...] = ()) -> Path:
    """A local folder, or a hub id fetched (or found in the cache) with huggingface_hub."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{what} {source}: expected a folder, got a file")
        return path
    if not is_hub_id(str(source)):
        raise CheckpointError(f"{what} {source}: no such folder (and not a hub id of the form owner/name)")
    from huggingface_hub import snapshot_download

    patterns = [f"{part}/*" for part in parts] + ["*.json"] if parts else None
    try:
        return Path(snapshot_download(str(source), allow_patterns=patterns, local_files_only=True))
    except Exception:
        pass
    include = " ".join(f"'{p}'" for p in patterns) if patterns else ""
    fetch_hint = (
        f"fetch it with `hf download {source} {'--include ' + include + ' ' if include else ''}"
        f"--local-dir models/{str(source).split('/')[-1]}` and pass that folder"
    )
    if not _hub_reachable():  # fail at once instead of after the hub client's retries
        raise CheckpointError(
            f"{what} '{source}' is not on this machine and the hub cannot be reached; {fetch_hint}"
        )
    try:
        return Path(snapshot_download(str(source), allow_patterns=patterns))
    except Exception as error:
        raise CheckpointError(
            f"{what} '{source}' is not on this machine and could not be downloaded ({type(error).__name__}); "
            f"{fetch_hint}"
        ) from None


def _hub_reachable(timeout_s: float = 2.0) -> bool:
    """A TCP connect to the hub endpoint, so that an offline machine is told so in seconds."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection(
            (url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout_s
        ):
            return True
    except OSError:
        return False


def is_hub_id(source: str) -> bool:
    """Whether ``source`` reads as a Hugging Face hub id (exactly owner/name) rather than a path."""
    return not source.startswith((".", "/", "~")) and source.count("/") == 1


def _is_unet_folder(path: Path) -> bool:
    config = path / "config.json"
    if not config.exists():
        return False
    try:
        return "SpatioTemporal" in json.loads(config.read_text()).get("_class_name", "")
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{config}: unreadable ({error})") from None


def _published_family(name: str, family: str) -> str:
    if family != "auto":
        if family not in FAMILY_CONFIGS:
            raise CheckpointError(f"unknown family '{family}'; choose one of {', '.join(FAMILY_CONFIGS)}")
        return family
    lowered = name.lower()
    for candidate in FAMILY_CONFIGS:
        if candidate in lowered:
            return candidate
    raise CheckpointError(
        f"{name}: cannot tell which published family this UNet belongs to; pass --family "
        f"{' or --family '.join(FAMILY_CONFIGS)}"
    )


def _guarded(what: Path, load):
    if not what.exists():
        raise CheckpointError(f"{what}: missing (the model folder is incomplete)")
    try:
        return load()
    except CheckpointError:
        raise
    except Exception as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{what}: cannot be loaded ({message[:200]})") from None


def _load_vae(folder: Path, dtype: torch.dtype):
    def load():
        class_name = json.loads((folder / "config.json").read_text()).get("_class_name")
        if class_name not in VAE_CLASSES:
            raise CheckpointError(f"{folder}: unsupported VAE class {class_name}")
        return _with_fp16_fallback(VAE_CLASSES[class_name], folder, dtype)

    return _guarded(folder, load)


def _with_fp16_fallback(model_class, folder: Path, dtype: torch.dtype):
    """Published SVD folders often hold only the ``fp16`` variant of the weights."""
    has_full = any(
        p.name.startswith(
            (
                "diffusion_pytorch_model.safetensors",
                "model.safetensors",
                "diffusion_pytorch_model.bin",
                "pytorch_model.bin",
            )
        )
        for p in folder.iterdir()
    )
    variant = None if has_full else "fp16"
    return model_class.from_pretrained(folder, torch_dtype=dtype, variant=variant)


def _load_ours(root: Path, dtype: torch.dtype) -> DepthModel:
    config = _guarded(root / CONFIG_NAME, lambda: DepthModelConfig.load(root))
    encoder = extractor = None
    if config.image_conditioning != "none":
        encoder = _guarded(
            root / "image_encoder",
            lambda: _with_fp16_fallback(CLIPVisionModelWithProjection, root / "image_encoder", dtype),
        )
        extractor = _guarded(
            root / "feature_extractor", lambda: CLIPImageProcessor.from_pretrained(root / "feature_extractor")
        )
    detail = None
    if (root / "detail_encoder").exists():
        detail = _guarded(
            root / "detail_encoder",
            lambda: DetailEncoder.from_pretrained(root / "detail_encoder", torch_dtype=dtype),
        )
    model = DepthModel(
        vae=_load_vae(root / "vae", dtype),
        unet=_guarded(
            root / "unet", lambda: VideoDepthUNet.from_pretrained(root / "unet", torch_dtype=dtype)
        ),
        scheduler=_guarded(
            root / "scheduler", lambda: EulerDiscreteScheduler.from_pretrained(root / "scheduler")
        ),
        config=config,
        image_encoder=encoder,
        feature_extractor=extractor,
        detail_encoder=detail,
    )
    expected = 2 * model.vae.config.latent_channels + (
        detail.config.out_channels if detail is not None else 0
    )
    if model.unet.config.in_channels != expected:
        raise CheckpointError(
            f"{root}: the UNet takes {model.unet.config.in_channels} input channels but the "
            f"VAE{' and detail encoder' if detail is not None else ''} give {expected}"
        )
    return model.eval()


def _load_published(unet_root: Path, family: str, svd_root: Path, dtype: torch.dtype) -> DepthModel:
    unet = _guarded(unet_root, lambda: _with_fp16_fallback(VideoDepthUNet, unet_root, dtype))
    return DepthModel(
        vae=_load_vae(svd_root / "vae", dtype),
        unet=unet,
        scheduler=_guarded(
            svd_root / "scheduler", lambda: EulerDiscreteScheduler.from_pretrained(svd_root / "scheduler")
        ),
        config=FAMILY_CONFIGS[family](),
        image_encoder=_guarded(
            svd_root / "image_encoder",
            lambda: _with_fp16_fallback(CLIPVisionModelWithProjection, svd_root / "image_encoder", dtype),
        ),
        feature_extractor=_guarded(
            svd_root / "feature_extractor",
            lambda: CLIPImageProcessor.from_pretrained(svd_root / "feature_extractor"),
        ),
    ).eval()
