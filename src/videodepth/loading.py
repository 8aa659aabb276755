"""Building a pipeline: which model, on which device, at which precision.

Every entry point (``videodepth run``, ``eval``, ``train-eval``, ``bench``, training's
validation, the web UI and Python users) builds its pipeline here, so they share one policy:
``auto`` picks CUDA when PyTorch sees a GPU; float16 on CUDA and float32 elsewhere; CPU offload
only with a GPU; the model's one-line note (and any loud notice) said once where it loads.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from videodepth.choices import DTYPE_NAMES, SVD_HUB_ID
from videodepth.errors import InputError

if TYPE_CHECKING:
    import torch

    from videodepth.inference.pipeline import VideoDepthPipeline
    from videodepth.models.bundle import DepthModel


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, checked
    against what this machine has."""
    import torch

    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device '{name}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but this PyTorch build sees no CUDA GPU")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device mps asked for, but this machine has no Apple GPU (MPS)")
    return device


def resolve_dtype(name: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``auto``: float16 on CUDA (the published models' precision), float32 elsewhere."""
    import torch

    if isinstance(name, torch.dtype):
        return name
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in DTYPE_NAMES:
        raise InputError(f"unknown dtype '{name}'; choose auto or one of {', '.join(DTYPE_NAMES)}")
    return getattr(torch, name)


def load_model(
    model: str | Path | None = None,
    family: str = "auto",
    base: str | Path = SVD_HUB_ID,
    dtype: torch.dtype | None = None,
) -> DepthModel:
    """A model folder or hub id (a videodepth model, or a published UNet plugged into ``base``),
    or the small model shipped inside the package when ``model`` is None."""
    from videodepth.models.bundle import DepthModel
    from videodepth.models.default import load_default_model

    if model is None:
        return load_default_model()
    return DepthModel.from_pretrained(model, family, base, dtype)


def announce(model: DepthModel, say: Callable[[str], None]) -> None:
    """The model's one-line note, and its notice loudly (e.g. that its weights are untrained)."""
    if model.config.note:
        say(f"note: {model.config.note}")
    if model.config.notice:
        banner = "!" * 100
        say(f"{banner}\n{model.config.notice}\n{banner}")


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


def load_pipeline(
    model: str | Path | DepthModel | None = None,
    family: str = "auto",
    base: str | Path = SVD_HUB_ID,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    cpu_offload: bool = False,
    threads: int | None = None,
    say: Callable[[str], None] | None = _to_stderr,
) -> VideoDepthPipeline:
    """The pipeline for ``model`` (a folder, a hub id, a loaded :class:`DepthModel`, or None for
    the shipped model) under the one device and precision policy. ``threads`` sets the CPU
    threads of torch and OpenCV for the whole process (None: leave them as they are, as training's
    validation must; commands resolve their ``--threads`` first, see ``resolve_threads``); ``say`` receives the model's
    note (None: stay quiet, e.g. where a UI shows the note itself)."""
    from videodepth.inference.pipeline import VideoDepthPipeline
    from videodepth.models.bundle import DepthModel
    from videodepth.threads import set_threads

    if threads is not None:
        set_threads(threads)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    if cpu_offload and device.type == "cpu":
        raise InputError("--cpu-offload needs a GPU device")
    if not isinstance(model, DepthModel):
        model = load_model(model, family, base, dtype)
    if say is not None:
        announce(model, say)
    return VideoDepthPipeline(model, device, dtype, cpu_offload=cpu_offload)
