"""Both languages for every GUI string, and the browser's choice."""

from __future__ import annotations

import pytest

from lora_gui import i18n
from trainer.config import FIELDS, TABS


@pytest.mark.parametrize(
    "header,lang",
    [
        ("ja-JP,ja;q=0.9,en-US;q=0.8", "ja"),
        ("en-US,en;q=0.9,ja;q=0.8", "en"),
        ("fr-FR,ja;q=0.5", "ja"),
        ("de", "en"),
        ("", "en"),
        (None, "en"),
        ("en;q=0.1,ja;q=0.9", "ja"),
    ],
)
def test_pick_language_from_accept_language(header, lang):
    assert i18n.pick_language(header) == lang


def test_every_gui_string_has_english_and_japanese():
    for key, (en, ja) in i18n._STRINGS.items():
        assert en.strip() and ja.strip(), key
        assert en != ja or key in ("group.LoRA+", "group.LyCORIS"), key


def test_every_tab_and_group_of_the_schema_has_a_japanese_name():
    for tab in TABS:
        assert i18n.tab_name(tab, "ja") != tab
    for group in {s.group for s in FIELDS.values()}:
        assert f"group.{group}" in i18n._STRINGS, f"add a Japanese name for {group!r} in lora_gui/i18n.py"


def test_japanese_tab_names_keep_the_english_word_the_guides_use():
    assert i18n.tab_name("Folders", "ja") == "フォルダ (Folders)"
    assert "Start training" in i18n.t("run.start", "ja")


def test_every_schema_field_has_japanese_label_and_help():
    for name, spec in FIELDS.items():
        assert spec.label_ja and spec.help_ja, name
        assert i18n.field_label(spec, "ja") == spec.label_ja
        assert i18n.field_help(spec, "en") == spec.help
