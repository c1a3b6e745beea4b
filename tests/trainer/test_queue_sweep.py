"""Sweeps: a preset's "sweep" key queues one run per combination, named and labelled."""

from __future__ import annotations

import json

import pytest

from tests.helpers import REQUIRED, load_tensors, make_toy_dataset, toy_settings
from trainer.__main__ import main
from trainer.config import ConfigError, config_from_dict
from trainer.config.sweep import expand_sweep, sweep_problems, variant_name
from trainer.queue import read_queue


def test_the_sweep_is_a_cartesian_product_with_named_variants():
    raw = {"output_name": "mychar", "sweep": {"network_alpha": [50, 80, 200], "num_repeats": [40, 50]}}
    variants = expand_sweep(raw)
    assert len(variants) == 6
    assert variants[0].name == "mychar-network_alpha50-num_repeats40"
    assert variants[0].settings["network_alpha"] == 50 and variants[0].settings["num_repeats"] == 40
    assert json.loads(variants[-1].settings["sweep_values"]) == {"network_alpha": 200, "num_repeats": 50}
    assert (
        variant_name("x", {"learning_rate": 0.0001, "flip_aug": True}) == "x-learning_rate0.0001-flip_augtrue"
    )


def test_a_bad_sweep_is_refused_naming_the_key():
    messages = [str(p) for p in sweep_problems({"network_alfa": [1], "network_dim": 8, "output_name": ["a"]})]
    assert any("'network_alfa' is not a setting" in m for m in messages)
    assert any("network_dim must be a list" in m for m in messages)
    assert any("output_name cannot be swept" in m for m in messages)
    with pytest.raises(ConfigError, match="network_dim must be a list"):
        config_from_dict({"sweep": {"network_dim": 8}})
    cfg, warnings = config_from_dict({**REQUIRED, "sweep": {"network_dim": [4, 8]}})  # the preset loads
    assert any("2 variant(s)" in w for w in warnings)


def test_every_variant_is_checked_before_anything_is_added(tmp_path, tiny_model, capsys):
    data = make_toy_dataset(tmp_path / "data")
    values = toy_settings(tiny_model("sd15"), data, tmp_path / "out", output_name="mychar")
    values["sweep"] = {"network_alpha": [2, 4], "learning_rate": [0.01, -1]}
    (tmp_path / "p.json").write_text(json.dumps(values))
    qfile = tmp_path / "q.json"
    assert main(["queue", "--file", str(qfile), "add", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert "mychar-network_alpha2-learning_rate-1: learning_rate" in err
    assert "mychar-network_alpha4-learning_rate-1: learning_rate" in err
    assert not read_queue(qfile).entries


def test_a_sweep_of_two_alphas_trains_two_named_files_with_their_metadata(tmp_path, tiny_model):
    from safetensors import safe_open

    data = make_toy_dataset(tmp_path / "data")  # folder 1_toy: 1 repeat, 4 images
    values = toy_settings(tiny_model("sd15"), data, tmp_path / "out", output_name="mychar", epoch=1)
    values["sweep"] = {"network_alpha": [2, 4], "num_repeats": [2]}
    (tmp_path / "p.json").write_text(json.dumps(values))
    qfile = tmp_path / "q.json"
    assert main(["queue", "--file", str(qfile), "add", str(tmp_path / "p.json")]) == 0
    assert main(["queue", "--file", str(qfile), "run"]) == 0

    names = [e.name for e in read_queue(qfile).entries]
    assert names == ["mychar-network_alpha2-num_repeats2", "mychar-network_alpha4-num_repeats2"]
    for alpha, name in zip((2, 4), names, strict=True):
        path = tmp_path / "out" / f"{name}.safetensors"
        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
        assert float(meta["ss_network_alpha"]) == alpha
        assert json.loads(meta["ss_sweep"]) == {"network_alpha": alpha, "num_repeats": 2}
        assert meta["ss_steps"] == "4"  # 4 images x 2 repeats (not the folder's 1) / batch 2
        assert load_tensors(path)


def test_relative_paths_are_kept_from_where_the_preset_was_added(tmp_path, monkeypatch):
    from trainer.queue.add import checked_variants

    make_toy_dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    raw = {**REQUIRED, "pretrained_model_name_or_path": "owner/model", "train_data_dir": "data"}
    raw["output_dir"] = "out"
    ((name, settings),) = checked_variants(raw, check=False)
    assert settings["train_data_dir"] == str(tmp_path / "data")
    assert settings["output_dir"] == str(tmp_path / "out")
    assert settings["pretrained_model_name_or_path"] == "owner/model"  # a Hugging Face id
