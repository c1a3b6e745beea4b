"""Presets in the GUI: shipped ones load, Kohya files import, saves hold no secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lora_gui.presets import (
    SHIPPED_DIR,
    PresetError,
    list_presets,
    preset_values,
    read_preset,
    save_user_preset,
)
from trainer.config import FIELDS, config_from_dict

SHIPPED = ("sd15_character", "sd15_style", "sdxl_character", "seed_recipe")
REQUIRED = ("pretrained_model_name_or_path", "train_data_dir", "output_dir")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_presets_validate_once_the_folders_are_chosen(name):
    raw = json.loads((SHIPPED_DIR / f"{name}.json").read_text(encoding="utf-8"))
    assert set(raw) <= set(FIELDS)  # no key the trainer would ignore
    raw.update({k: f"/data/{k}" for k in REQUIRED})
    _cfg, warnings = config_from_dict(raw)
    assert not any("not used" in w for w in warnings)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_presets_load_into_the_form_and_ask_for_the_folders(name):
    loaded = read_preset(SHIPPED_DIR / f"{name}.json")
    assert loaded.notes == []
    assert {p.key for p in loaded.problems} == set(REQUIRED)
    assert any("choose the image folder" in p.message for p in loaded.problems)


def test_seed_recipe_is_the_guides_final_settings():
    v = read_preset(SHIPPED_DIR / "seed_recipe.json").values
    assert (v["max_resolution"], v["network_dim"], v["network_alpha"]) == ("1024,1024", 512, 50)
    assert (v["train_batch_size"], v["epoch"], v["lr_warmup"]) == (1, 1, 0)
    assert (v["optimizer"], v["lr_scheduler"]) == ("Adafactor", "adafactor")


def test_list_presets_shows_shipped_then_yours(tmp_path):
    (tmp_path / "mine.json").write_text("{}", encoding="utf-8")
    labels = [label for label, _ in list_presets(tmp_path, "en")]
    for name in SHIPPED:
        assert f"{name} (shipped)" in labels
    assert labels[-1] == "mine (yours)"
    assert list_presets(tmp_path, "ja")[-1][0] == "mine(自分用)"


def test_a_kohya_gui_preset_imports_with_notes_on_what_changed_and_what_was_unused(tmp_path):
    kohya = {
        "use_8bit_adam": True,
        "xformers": True,
        "learning_rate": "0.0002",
        "epoch": "4",
        "network_dim": 16,
        "LoRA_type": "Standard",
        "gui_theme_from_elsewhere": "dark",
        "another_unknown_key": 0,
        "seed": "",
        "optimizer": "NotAnOptimizer",
    }
    path = tmp_path / "kohya.json"
    path.write_text(json.dumps(kohya), encoding="utf-8")
    loaded = read_preset(path)
    v = loaded.values
    assert (v["learning_rate"], v["epoch"], v["network_dim"], v["xformers"]) == (0.0002, 4, 16, "xformers")
    assert v["seed"] == FIELDS["seed"].default
    notes = "\n".join(loaded.notes)
    assert "migrated: xformers: True -> 'xformers'" in notes
    assert "not used by this trainer (ignored): another_unknown_key, gui_theme_from_elsewhere" in notes
    assert "optimizer: 'NotAnOptimizer' cannot be used" in notes
    assert v["optimizer"] == FIELDS["optimizer"].default


def test_unreadable_preset_is_a_message(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope", encoding="utf-8")
    with pytest.raises(PresetError, match="not a readable JSON"):
        read_preset(bad)
    with pytest.raises(PresetError, match="JSON object"):
        preset_values([1, 2])


def test_save_writes_the_users_folder_without_secrets(values, tmp_path):
    values["huggingface_token"] = "hf_secret"
    path = save_user_preset(values, "my char", tmp_path / "user")
    assert path == tmp_path / "user" / "my char.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert "hf_secret" not in path.read_text(encoding="utf-8")
    assert saved["output_name"] == "mylora"
    assert read_preset(path).values["output_name"] == "mylora"


def test_save_accepts_a_template_without_folders_but_not_bad_values(values, tmp_path):
    values.update(train_data_dir="", output_dir="", pretrained_model_name_or_path="")
    assert save_user_preset(values, "template", tmp_path).is_file()
    values["learning_rate"] = 7
    with pytest.raises(PresetError, match="Learning rate"):
        save_user_preset(values, "broken", tmp_path)
    assert not (tmp_path / "broken.json").exists()


@pytest.mark.parametrize("name", ["", "../evil", "a/b", "CON", "x.json"])
def test_save_refuses_names_that_are_not_plain_file_names(values, tmp_path, name):
    with pytest.raises(PresetError):
        save_user_preset(values, name, tmp_path)
    assert list(Path(tmp_path).glob("**/*.json")) == []
