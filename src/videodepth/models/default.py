"""The small model we ship inside the package, and what happens before it exists."""

from __future__ import annotations

from pathlib import Path

from videodepth.models.bundle import DepthModel
from videodepth.models.config import CONFIG_NAME

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "weights" / "videodepth-small"

UNTRAINED_NOTICE = (
    "THE SHIPPED MODEL IS NOT TRAINED: no weights are bundled with this build, so videodepth is "
    "running a randomly initialised network. Its output is NOT depth. Train one with "
    "`videodepth train` or pass --model with a published checkpoint."
)


def load_default_model() -> DepthModel:
    if (DEFAULT_MODEL_DIR / CONFIG_NAME).exists():
        return DepthModel.from_pretrained(DEFAULT_MODEL_DIR)
    from videodepth.models.architectures import random_model

    model = random_model("videodepth", size="small", seed=0)
    model.config.notice = UNTRAINED_NOTICE
    return model
