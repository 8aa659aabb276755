"""Stage configs: every shipped recipe loads; mistakes are one-line InputErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from videodepth.errors import InputError
from videodepth.training.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load(path):
    config = load_config(path)
    assert config.steps >= 1 and config.name


def test_recipes_keep_the_papers_structure():
    root = CONFIGS[0].parents[1] if CONFIGS[0].parent.name != "configs" else CONFIGS[0].parent
    load = lambda name: load_config(root / name)  # noqa: E731
    s1, s2, s3 = (load(f"depthcrafter/stage{i}.yaml") for i in (1, 2, 3))
    assert (s1.trainable, s2.trainable, s3.trainable) == ("all", "temporal", "spatial")
    assert s1.data.min_len == 1 and s2.data.max_len > s1.data.max_len
    assert s3.data.min_len == s3.data.max_len and "fine" in s3.data.shards[0]
    assert {s1.objective.noise, s2.objective.noise, s3.objective.noise} == {"clip"}
    spatial, temporal = load("chronodepth/spatial.yaml"), load("chronodepth/temporal.yaml")
    assert (spatial.trainable, spatial.data.max_len) == ("spatial", 1)
    assert (temporal.trainable, temporal.data.min_len, temporal.data.max_len) == ("temporal", 1, 5)
    assert temporal.objective.noise == "frame"
    per_frame = load("per_frame.yaml")
    assert per_frame.data.max_len == 1 and per_frame.inference["window"] == 1


def test_overrides_and_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 5\noptim: {lr: 0.1}\n")
    config = load_config(path, ["optim.lr=3e-5", "data.size=[64, 96]"])
    assert config.optim.lr == 3e-5 and config.data.size == (64, 96) and config.steps == 5
    path.write_text("optim: {learning_rate: 0.1}\n")
    with pytest.raises(InputError, match="unknown key.*learning_rate"):
        load_config(path)
    with pytest.raises(InputError, match="multiples of 32"):
        load_config(path.with_name("ok.yaml") if path.with_name("ok.yaml").write_text("{}") else None,
                     ["data.size=[50, 64]"])
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="section.key=value"):
        load_config(path.with_name("ok.yaml"), ["steps"])
    with pytest.raises(InputError, match=r"sigma_max_fraction must be in \[0, 1\], got 1.5"):
        load_config(path.with_name("ok.yaml"), ["objective.sigma_max_fraction=1.5"])


def test_a_family_without_a_published_start_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {init: designed, family: depthcrafter}\n")
    with pytest.raises(InputError, match="model.family applies to model.init svd"):
        load_config(path)
