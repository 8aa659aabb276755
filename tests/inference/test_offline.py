"""An absent checkpoint on an offline machine: one line naming `hf download`, no retries."""

from __future__ import annotations

import huggingface_hub
import pytest

from videodepth.errors import CheckpointError
from videodepth.models import bundle


def test_offline_hub_id_fails_at_once_with_the_current_command(monkeypatch):
    calls = []

    def snapshot_download(repo_id, allow_patterns=None, local_files_only=False):
        calls.append(local_files_only)
        raise FileNotFoundError("not cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(bundle, "_hub_reachable", lambda: False)
    with pytest.raises(CheckpointError) as error:
        bundle.DepthModel.from_pretrained("tencent/DepthCrafter", "auto", "stabilityai/none", None)
    message = str(error.value)
    assert "\n" not in message and "hf download tencent/DepthCrafter" in message
    assert "huggingface-cli" not in message and "cannot be reached" in message
    assert calls == [True]  # the local cache was tried, the network never


def test_hub_offline_setting_is_honoured(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert bundle._hub_reachable() is False
