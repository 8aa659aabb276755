"""Fixtures for the io tests: tiny synthetic videos built in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from iohelpers import write_video


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "clip.mkv", **kwargs: object) -> Path:
        return write_video(tmp_path / name, **kwargs)

    return make
