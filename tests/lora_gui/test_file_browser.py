"""The 📂 picker: one folder at a time, only entries the user was shown, off when exposed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lora_gui.app import AppOptions, make_app
from lora_gui.file_browser import (
    BrowseError,
    kind_of,
    list_folder,
    parent_of,
    real_folder,
    start_folder,
    step_into,
)

from .gui_fakes import FakeApi


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "models" / "sdxl").mkdir(parents=True)
    (tmp_path / "models" / "base.safetensors").write_bytes(b"x" * 2000)
    (tmp_path / "models" / "old.ckpt").write_bytes(b"x")
    (tmp_path / "models" / "notes.txt").write_text("n")
    (tmp_path / "models" / ".secret").mkdir()
    (tmp_path / "models" / ".hidden.safetensors").write_bytes(b"x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "private.txt").write_text("p")
    return tmp_path


def test_a_folder_lists_its_folders_then_its_files_and_hides_dotfiles(tree):
    listing = list_folder(tree / "models")
    assert listing.names == ["sdxl", "base.safetensors", "notes.txt", "old.ckpt"]
    assert [e.is_dir for e in listing.entries] == [True, False, False, False]
    models = list_folder(tree / "models", (".safetensors", ".ckpt"))
    assert models.names == ["sdxl", "base.safetensors", "old.ckpt"]
    assert list_folder(tree / "models", folders_only=True).names == ["sdxl"]


def test_only_an_entry_that_was_listed_can_be_entered(tree):
    folder = str(tree / "models")
    names = list_folder(tree / "models").names
    assert step_into(folder, "sdxl", names) == (tree / "models" / "sdxl").resolve()
    for trick in ("..", "../outside", "sdxl/../../outside", "/etc", "outside", ".secret", "", "a\0b"):
        with pytest.raises(BrowseError):
            step_into(folder, trick, names + [trick] if trick == "../outside" else names)


def test_symlinks_show_where_they_lead(tree):
    link = tree / "models" / "elsewhere"
    os.symlink(tree / "outside", link)
    names = list_folder(tree / "models").names
    assert "elsewhere" in names
    assert step_into(str(tree / "models"), "elsewhere", names) == (tree / "outside").resolve()
    assert real_folder(str(link)) == (tree / "outside").resolve()
    os.symlink(tree / "missing", tree / "models" / "broken")
    assert "broken" not in list_folder(tree / "models").names


def test_the_picker_opens_at_the_fields_folder_or_home(tree):
    home = tree / "outside"
    assert start_folder(str(tree / "models" / "base.safetensors"), home) == (tree / "models").resolve()
    assert start_folder(str(tree / "models" / "not" / "yet"), home) == (tree / "models").resolve()
    assert start_folder("", home) == home.resolve()
    assert parent_of(str(tree / "models")) == tree.resolve()
    with pytest.raises(BrowseError):
        real_folder(str(tree / "models" / "notes.txt"))


def test_each_field_gets_its_kind_of_entries():
    assert kind_of("pretrained_model_name_or_path", "path-any") == ("any", (".safetensors", ".ckpt"))
    assert kind_of("network_weights", "path-file") == ("file", (".safetensors",))
    assert kind_of("dataset_config", "path-file") == ("file", (".toml",))
    assert kind_of("train_data_dir", "path-dir") == ("dir", None)
    assert kind_of("config_path", None) == ("file", (".json",))


def _make(tmp_path: Path, **options):
    return make_app(
        AppOptions(user_dir=tmp_path / "user", settings_dir=tmp_path / "settings", **options), FakeApi()
    )


def test_browsing_from_a_field_returns_the_chosen_folder_into_it(tree):
    app = _make(tree)
    browser = app.page.browser
    assert {"train_data_dir", "pretrained_model_name_or_path", "models_dir", "config_path"} <= set(
        browser.buttons
    )
    opened = browser.on_open("train_data_dir", str(tree / "models" / "sdxl"), "en")
    assert opened[browser.folder] == str((tree / "models" / "sdxl").resolve())
    state = opened[browser.state]
    up = browser.on_folder("up", "", state, "en")
    assert up[browser.entries]["choices"] == [("📁 sdxl", "sdxl/")]  # a folder field: folders only
    chosen = browser.on_use_folder(up[browser.state], "en")
    assert chosen[app.page.form.widgets["train_data_dir"]] == str((tree / "models").resolve())
    assert chosen[browser.picked] == "train_data_dir"


def test_a_model_file_is_chosen_with_one_click(tree):
    app = _make(tree)
    browser = app.page.browser
    opened = browser.on_open("pretrained_model_name_or_path", str(tree / "models"), "en")
    labels = [label for label, _ in opened[browser.entries]["choices"]]
    assert labels[0] == "📁 sdxl" and labels[1].startswith("📄 base.safetensors") and len(labels) == 3
    chosen = browser.on_entry("base.safetensors", opened[browser.state], "en")
    model = app.page.form.widgets["pretrained_model_name_or_path"]
    assert chosen[model] == str((tree / "models" / "base.safetensors").resolve())
    refused = browser.on_entry("../outside/", opened[browser.state], "en")
    assert "not in this folder" in refused[browser.message]


def test_the_picker_is_off_when_the_app_is_exposed_without_a_password(tree):
    app = _make(tree, file_browser=False)
    browser = app.page.browser
    assert browser.buttons == {}
    assert "--auth" in browser.on_open("train_data_dir", str(tree), "en")[browser.message]
    assert (
        browser.on_entry(
            "models/", {"target": "train_data_dir", "folder": str(tree), "names": ["models"]}, "en"
        )
        == {}
    )


@pytest.mark.parametrize(
    "argv,on", [([], True), (["--host", "10.0.0.5"], False), (["--host", "0.0.0.0", "--auth", "me:pw"], True)]
)
def test_gui_flags_turn_the_picker_off_on_a_network_address_without_a_password(argv, on, tmp_path):
    import gui

    options = gui.app_options(gui.parse_args([*argv, "--models-dir", str(tmp_path)]))
    assert options.file_browser is on and options.models_dir == str(tmp_path.resolve())
