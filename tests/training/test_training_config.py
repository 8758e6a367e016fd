"""Config dataclasses, YAML presets and ``--set`` overrides: values, merges and error messages."""

from __future__ import annotations

import pytest
import yaml

from mnemonet.training.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    config_from_dict,
    list_presets,
    load_config,
    parse_override,
    preset_paths,
    resolve,
)

BASE = {"model": {"name": "gru", "hidden_size": 8}, "task": {"name": "delayed_recall", "t_max": 8}}


def test_defaults_and_flat_sections():
    cfg = load_config(BASE)
    assert cfg.model.name == "gru" and cfg.model.kwargs == {"hidden_size": 8}
    assert cfg.task.kwargs == {"t_max": 8}
    assert cfg.curriculum.name is None
    assert cfg.trainer.optimizer == "adam" and cfg.trainer.steps == 1000


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("trainer.lr=1e-3", ["trainer", "lr"], "1e-3"),  # YAML 1.1 reads this as a string; the float field converts
        ("trainer.steps=20", ["trainer", "steps"], 20),
        ("task.length_range=[2, 5]", ["task", "length_range"], [2, 5]),
        ("trainer.clip_norm=null", ["trainer", "clip_norm"], None),
        ("model.name=lstm", ["model", "name"], "lstm"),
        ("description=a=b", ["description"], "a=b"),
    ],
)
def test_parse_override(text, path, value):
    assert parse_override(text) == (path, value)


def test_overrides_are_typed_and_nested():
    cfg = load_config(BASE, ["trainer.lr=1e-3", "trainer.early_stopping.patience=3", "model.hidden_size=16",
                             "trainer.clip_norm=null", "curriculum.name=decu", "curriculum.step=2"])  # fmt: skip
    assert cfg.trainer.lr == pytest.approx(1e-3) and isinstance(cfg.trainer.lr, float)
    assert cfg.trainer.early_stopping.patience == 3
    assert cfg.model.kwargs["hidden_size"] == 16
    assert cfg.trainer.clip_norm is None
    assert cfg.curriculum.name == "decu" and cfg.curriculum.kwargs == {"step": 2}


def test_yaml_boolean_words_stay_words_for_text_fields():
    # YAML 1.1 reads off/on/yes/no as booleans; a text field such as trainer.progress keeps the word
    assert load_config(BASE, ["trainer.progress=off"]).trainer.progress == "off"
    assert load_config(BASE, ["trainer.tensorboard=off"]).trainer.tensorboard is False


def test_int_field_accepts_integral_float_but_not_text():
    assert load_config(BASE, ["trainer.steps=20.0"]).trainer.steps == 20
    with pytest.raises(ConfigError, match=r"trainer\.steps: expected int, got 'abc'"):
        load_config(BASE, ["trainer.steps=abc"])
    with pytest.raises(ConfigError, match=r"trainer\.steps: expected int, got 2\.5"):
        load_config(BASE, ["trainer.steps=2.5"])
    with pytest.raises(ConfigError, match=r"trainer\.tensorboard: expected bool"):
        load_config(BASE, ["trainer.tensorboard=3"])


def test_unknown_keys_name_the_key_and_suggest():
    with pytest.raises(ConfigError, match=r"trainer\.lrr: unknown key; did you mean 'lr'\?"):
        load_config(BASE, ["trainer.lrr=0.1"])
    with pytest.raises(ConfigError, match=r"trainr: unknown section; did you mean 'trainer'\?"):
        load_config(BASE, ["trainr.lr=0.1"])
    with pytest.raises(ConfigError, match=r"trainer\.early_stopping\.patiense: unknown key; did you mean 'patience'"):
        load_config(BASE, ["trainer.early_stopping.patiense=2"])
    with pytest.raises(ConfigError, match=r"trainer\.batchsize: unknown key; did you mean 'batch_size'"):
        config_from_dict({**BASE, "trainer": {"batchsize": 3}})
    with pytest.raises(ConfigError, match=r"modle: unknown key; did you mean 'model'"):
        config_from_dict({**BASE, "modle": {}})


def test_bad_values_name_the_key():
    with pytest.raises(ConfigError, match=r"trainer\.optimizer: expected one of .*got 'adma'; did you mean 'adam'"):
        load_config(BASE, ["trainer.optimizer=adma"])
    with pytest.raises(ConfigError, match=r"trainer\.lr: expected a value in \(0, inf\), got -1\.0"):
        load_config(BASE, ["trainer.lr=-1"])
    with pytest.raises(ConfigError, match=r"trainer\.momentum: expected a value in \[0, 1\)"):
        load_config(BASE, ["trainer.momentum=1"])
    with pytest.raises(ConfigError, match=r"trainer\.device: expected 'auto'"):
        load_config(BASE, ["trainer.device=tpu"])
    with pytest.raises(ConfigError, match=r"model\.input_size: set by the task"):
        load_config(BASE, ["model.input_size=3"])
    with pytest.raises(ConfigError, match=r"--set 'trainer\.lr': expected KEY=VALUE"):
        load_config(BASE, ["trainer.lr"])
    with pytest.raises(ConfigError, match=r"trainer\.lr: is a value"):
        apply_overrides({"trainer": {"lr": 0.1}}, ["trainer.lr.x=1"])


def test_yaml_round_trip():
    cfg = load_config(BASE, ["trainer.lr=0.003", "trainer.early_stopping.patience=2", "curriculum.name=decu"])
    again = config_from_dict(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg
    assert isinstance(again, RunConfig)


def test_extends_merges_and_replaces_on_new_name(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({
        "description": "base", **BASE, "curriculum": {"name": "decu", "step": 2},
        "trainer": {"steps": 50, "lr": 0.01, "early_stopping": {"patience": 4}},
    }))  # fmt: skip
    (tmp_path / "child.yaml").write_text(yaml.safe_dump({
        "extends": "base.yaml", "model": {"hidden_size": 16}, "curriculum": {"name": "vocu", "start": 3},
        "trainer": {"early_stopping": {"metric": "loss"}},
    }))  # fmt: skip
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg.description == "base"
    assert cfg.model.name == "gru" and cfg.model.kwargs == {"hidden_size": 16}
    assert cfg.curriculum.name == "vocu" and cfg.curriculum.kwargs == {"start": 3}  # not merged with decu's step
    assert cfg.trainer.steps == 50 and cfg.trainer.early_stopping.patience == 4
    assert cfg.trainer.early_stopping.metric == "loss"


def test_extends_cycle_and_missing_file(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="no such file"):
        load_config(str(tmp_path / "nope.yaml"))
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(tmp_path / "list.yaml")


def test_unknown_preset_suggests_closest():
    with pytest.raises(
        ConfigError, match=r"'delayed_recall_gru-smal' is neither.*did you mean 'delayed_recall_gru-small'"
    ):
        resolve("delayed_recall_gru-smal")


def test_every_preset_loads_has_a_description_and_a_small_twin():
    presets = list_presets()
    assert "delayed_recall_gru-small" in presets
    for name, desc in presets.items():
        assert desc, f"preset {name} has no description"
        cfg = load_config(name)
        assert cfg.model.name and cfg.task.name
        if not name.endswith("-small"):
            assert f"{name}-small" in presets, f"paper-scale preset {name} has no -small twin"
    assert set(preset_paths()) == set(presets)
