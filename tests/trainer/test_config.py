"""The one schema: defaults, validation that lists every problem, presets and Kohya files."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import assert_allowed, assert_named_without_traceback
from trainer.config import (
    FIELDS,
    TABS,
    ConfigError,
    TrainingConfig,
    config_from_dict,
    preset_dict,
    validate_values,
)
from trainer.presets import load_preset, save_preset

REQUIRED = {"pretrained_model_name_or_path": "demo/model", "train_data_dir": "data", "output_dir": "out"}


def test_every_field_is_declared_once_with_help_in_both_languages_and_a_tab():
    assert len(FIELDS) > 60
    for name, spec in FIELDS.items():
        assert spec.tab in TABS, name
        assert spec.label and spec.label_ja and spec.help and spec.help_ja, name
        assert_allowed(spec, spec.default)  # type, minimum, maximum and choices, each checked


def test_kohya_defaults_and_the_max_train_steps_trap():
    cfg = TrainingConfig()
    assert cfg.train_batch_size == 1 and cfg.epoch == 1 and cfg.save_every_n_epochs == 1
    assert cfg.learning_rate == 1e-4 and cfg.lr_scheduler == "cosine" and cfg.lr_warmup == 10
    assert cfg.optimizer == "AdamW8bit" and cfg.network_dim == 8 and cfg.network_alpha == 1
    assert cfg.max_resolution == "512,512" and cfg.enable_bucket and cfg.cache_latents
    assert cfg.mixed_precision == "fp16" and cfg.save_precision == "fp16"
    assert cfg.max_train_steps == 0  # Kohya's 1600 would silently override the epochs


def test_validation_lists_every_problem_at_once_naming_key_value_and_allowed():
    with pytest.raises(ConfigError) as info:
        validate_values(
            {
                **REQUIRED,
                "learning_rate": "1e-4 ",
                "train_batch_size": 0,
                "seed": -1,
                "output_name": "a/b",
                "optimizer": "Foo",
                "max_resolution": "500,512",
                "network_dim": 0,
            }
        )
    by_key = info.value.by_key()
    assert set(by_key) >= {
        "learning_rate",
        "train_batch_size",
        "seed",
        "output_name",
        "optimizer",
        "max_resolution",
        "network_dim",
    }
    assert "'1e-4'" in by_key["learning_rate"][0]
    assert "0" in by_key["train_batch_size"][0] and ">= 1" in by_key["train_batch_size"][0]
    assert "'AdamW'" in by_key["optimizer"][0]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -1e-4, "abc", True])
def test_bad_learning_rates_are_refused(value):
    with pytest.raises(ConfigError) as info:
        validate_values({**REQUIRED, "learning_rate": value})
    assert "learning_rate" in info.value.by_key()


@pytest.mark.parametrize("name", ["", "../x", "CON", "a:b", "x" * 200, "name."])
def test_bad_output_names(name):
    with pytest.raises(ConfigError) as info:
        validate_values({**REQUIRED, "output_name": name})
    assert "output_name" in info.value.by_key()


def test_kohya_gui_preset_loads_with_migrations_and_unknown_keys_listed(tmp_path):
    kohya = {
        "LoRA_type": "Standard",
        "pretrained_model_name_or_path": "runwayml/stable-diffusion-v1-5",
        "train_data_dir": "C:/lora/img",
        "output_dir": "C:/lora/model",
        "output_name": "mycar",
        "learning_rate": "0.0001",
        "lr_warmup": "10",
        "epoch": "10",
        "save_every_n_epochs": "3",
        "train_batch_size": 2,
        "max_resolution": "768,768",
        "network_dim": 128,
        "network_alpha": 64,
        "use_8bit_adam": True,
        "xformers": True,
        "seed": "",
        "max_train_steps": "1600",
        "mixed_precision": "bf16",
        "cache_latents": True,
        "model_list": "custom",
        "use_wandb": True,
        "rank_dropout_scale": False,
        "save_model_as": "safetensors",
        "clip_skip": "2",
        "shuffle_caption": True,
        "keep_tokens": "1",
    }
    path = tmp_path / "kohya.json"
    path.write_text(json.dumps(kohya), encoding="utf-8")
    cfg, warnings = load_preset(path)
    assert cfg.learning_rate == 1e-4 and cfg.epoch == 10 and cfg.save_every_n_epochs == 3
    assert cfg.optimizer == "AdamW8bit" and cfg.xformers == "xformers"
    assert cfg.max_train_steps == 1600  # Kohya: max_train_steps > 0 wins over epochs
    assert cfg.network_dim == 128 and cfg.network_alpha == 64 and cfg.clip_skip == 2
    assert cfg.keep_tokens == 1 and cfg.shuffle_caption and cfg.max_resolution == "768,768"
    assert cfg.seed == TrainingConfig().seed  # empty = default
    text = "\n".join(warnings)
    assert "model_list" in text and "use_wandb" in text
    assert "rank_dropout_scale" not in text  # a switch we lack that is off asks for nothing
    assert "use_8bit_adam" in text


def test_preset_round_trip_never_writes_secrets(tmp_path):
    cfg = validate_values({**REQUIRED, "huggingface_token": "hf_secret", "network_dim": 32})
    path = save_preset(cfg, tmp_path / "p.json")
    raw = path.read_text(encoding="utf-8")
    assert "hf_secret" not in raw and "huggingface_token" not in raw
    back, warnings = load_preset(path)
    assert preset_dict(back) == preset_dict(cfg)
    assert not any("not used" in w for w in warnings)


def test_shipped_presets_load(tmp_path):
    from pathlib import Path

    for path in sorted(Path(__file__).resolve().parents[2].joinpath("presets").glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw.update({k: raw.get(k) or v for k, v in REQUIRED.items()})
        _cfg, warnings = config_from_dict(raw)
        assert not any("not used" in w for w in warnings), (path.name, warnings)


def test_unreadable_preset_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_preset(bad)
    assert "bad.json" in str(info.value)
    with pytest.raises(ConfigError):
        load_preset(tmp_path / "missing.json")


_numeric = [n for n, s in FIELDS.items() if s.type in (int, float)]


@settings(max_examples=150, deadline=None)
@given(
    key=st.sampled_from(_numeric),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**12), 10**12),
        st.text(max_size=8),
        st.booleans(),
        st.none(),
    ),
)
def test_any_number_is_refused_naming_its_key_or_kept_within_the_spec(key, value):
    try:
        cfg = validate_values({**REQUIRED, key: value})
    except ConfigError as exc:
        assert_named_without_traceback(exc, key)
        return
    assert_allowed(FIELDS[key], getattr(cfg, key))  # accepted: a value the setting allows
