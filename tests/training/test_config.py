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
        load_config(
            path.with_name("ok.yaml") if path.with_name("ok.yaml").write_text("{}") else None,
            ["data.size=[50, 64]"],
        )
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


def test_a_misspelt_inference_key_fails_at_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inference: {stpes: 4}\n")
    with pytest.raises(
        InputError, match=r"^c.yaml.inference: unknown key\(s\) stpes; known: strategy, steps, "
    ):
        load_config(path)
    path.write_text("inference: {seed: 4}\n")  # a run setting, but not one a saved model keeps
    with pytest.raises(InputError, match=r"^c.yaml.inference: unknown key\(s\) seed;"):
        load_config(path)
    path.write_text("{}")
    with pytest.raises(InputError, match=r"unknown key\(s\) windw"):
        load_config(path, ["inference.windw=3"])
    with pytest.raises(InputError, match="inference: expected a mapping, got int"):
        load_config(path, ["inference=3"])


@pytest.mark.parametrize(
    "inference, message",
    [
        ("{steps: 0}", ": steps must be an integer >= 1, got 0"),
        ("{strategy: zigzag}", ": unknown strategy 'zigzag'; choose one of depthcrafter, chronodepth, "),
        ("{window: 0}", ": window must be an integer >= 1, got 0"),
        ("{sigma_epsilon: .nan}", ": sigma-epsilon must be a finite number, got nan"),
        ("{guidance: high}", ".guidance: expected a number, got 'high'"),
        (
            "{strategy: depthcrafter, window: 8, overlap: 8}",
            r": --overlap must be in \[0, window\) but is 8 with window 8",
        ),
        (
            "{strategy: chronodepth, window: 4, context: 4}",
            r": --context must be in \[0, window\) but is 4 with window 4",
        ),
    ],
)
def test_a_bad_inference_value_fails_at_load(tmp_path, inference, message):
    path = tmp_path / "c.yaml"
    path.write_text(f"inference: {inference}\n")
    with pytest.raises(InputError, match=f"^c.yaml.inference{message}"):
        load_config(path)


def test_inference_values_are_checked_against_the_starting_models_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    # a random model's defaults (window 24): an overlap of 30 cannot work ...
    path.write_text("inference: {overlap: 30}\n")
    with pytest.raises(InputError, match="but is 30 with window 24"):
        load_config(path)
    # ... but DepthCrafter's window is 110, and a ChronoDepth model uses no overlap at all
    path.write_text("model: {init: svd, family: depthcrafter}\ninference: {overlap: 30}\n")
    assert load_config(path).inference == {"overlap": 30}
    path.write_text("model: {init: svd, family: chronodepth}\ninference: {overlap: 30, max_res: 512}\n")
    assert load_config(path).inference == {"overlap": 30, "max_res": 512}
    from videodepth.models.config import DepthModelConfig

    folder = tmp_path / "previous_stage"
    folder.mkdir()
    DepthModelConfig(window=8, overlap=2).save(folder)
    path.write_text(f"model: {{init: {folder}}}\ninference: {{overlap: 10}}\n")
    with pytest.raises(InputError, match="but is 10 with window 8"):
        load_config(path)
