"""The page is derived from the schema: one widget per field, values round-trip."""

from __future__ import annotations

import dataclasses
from collections import Counter

import gradio as gr
import pytest

from lora_gui.app import AppOptions, build_app
from lora_gui.binding import Form, make_widget
from lora_gui.presets import preset_values
from lora_gui.values import config_values, form_values, validate_form
from trainer.config import FIELDS

from .gui_fakes import FakeApi


@pytest.fixture(scope="module")
def page():
    return build_app(AppOptions(lang="en"), api=FakeApi())


def field_components(demo: gr.Blocks) -> Counter:
    return Counter(
        b.elem_id[len("field-") :]
        for b in demo.blocks.values()
        if isinstance(getattr(b, "elem_id", None), str) and b.elem_id.startswith("field-")
    )


def field_ids_under(block) -> set[str]:
    out = set()
    for child in getattr(block, "children", []):
        if isinstance(getattr(child, "elem_id", None), str) and child.elem_id.startswith("field-"):
            out.add(child.elem_id[len("field-") :])
        out |= field_ids_under(child)
    return out


def test_every_schema_field_has_exactly_one_widget(page):
    counts = field_components(page)
    assert set(counts) == set(FIELDS)
    assert set(counts.values()) == {1}


def test_widgets_follow_the_schema(page):
    widgets = {
        b.elem_id[6:]: b
        for b in page.blocks.values()
        if isinstance(getattr(b, "elem_id", None), str) and b.elem_id.startswith("field-")
    }
    for name, spec in FIELDS.items():
        w = widgets[name]
        assert w.label == spec.label and w.info == spec.help, name
        if spec.type is bool:
            assert isinstance(w, gr.Checkbox), name
        elif spec.choices:
            assert isinstance(w, gr.Dropdown), name
            assert [c[1] for c in w.choices] == list(spec.choices), name
        elif spec.type in (int, float):
            assert isinstance(w, gr.Number), name
            assert (w.minimum, w.maximum) == (spec.minimum, spec.maximum), name
        elif spec.suggestions:  # the usual values offered, any text accepted
            assert isinstance(w, gr.Dropdown) and w.allow_custom_value, name
            assert [c[1] for c in w.choices] == list(spec.suggestions), name
        else:
            assert isinstance(w, gr.Textbox), name
            assert w.type == ("password" if spec.secret else "text"), name
        assert w.value == spec.default, name


def test_advanced_fields_sit_in_a_closed_accordion(page):
    # The schema's accordions (the presets bar, the config file, the queue and the grid are
    # panels of their own and hold no settings).
    accordions = [b for b in page.blocks.values() if isinstance(b, gr.Accordion) and field_ids_under(b)]
    in_accordions = set()
    for acc in accordions:
        inside = field_ids_under(acc)
        if acc.label in ("Presets", "Configuration file"):
            continue
        assert acc.open is False, acc.label
        assert all(FIELDS[n].advanced for n in inside), acc.label
        in_accordions |= inside
    assert in_accordions == {n for n, s in FIELDS.items() if s.advanced}


def test_japanese_labels_come_from_the_schema():
    with gr.Blocks():
        w = make_widget(FIELDS["learning_rate"], "ja")
    assert (w.label, w.info) == (FIELDS["learning_rate"].label_ja, FIELDS["learning_rate"].help_ja)


def test_every_event_reading_the_form_takes_raw_values(page):
    """A number out of range must reach our validation (which names the field), not fail
    in Gradio's Number.preprocess before any handler runs."""
    field_ids = {
        b._id
        for b in page.blocks.values()
        if isinstance(getattr(b, "elem_id", None), str) and b.elem_id.startswith("field-")
    }
    readers = [fn for fn in page.fns.values() if field_ids & {b._id for b in fn.inputs}]
    assert len(readers) >= 5
    assert all(fn.preprocess is False for fn in readers)


def test_values_round_trip_through_the_config(values):
    raw = {n: values[n] for n in FIELDS}
    cfg, problems = validate_form(form_values(raw))
    assert problems == []
    assert config_values(cfg) == raw


def test_an_emptied_number_is_reported_as_empty(values):
    raw = {n: None if n == "epoch" else values[n] for n in FIELDS}
    _, problems = validate_form(form_values(raw))
    assert [(p.key, "empty" in p.message) for p in problems] == [("epoch", True)]


def test_loading_a_preset_fills_every_field_it_names_and_defaults_the_rest():
    raw = {
        "network_dim": 64,
        "network_alpha": 32.0,
        "flip_aug": True,
        "optimizer": "AdamW",
        "max_resolution": "768,768",
        "output_name": "x",
    }
    loaded = preset_values(raw)
    assert sorted(loaded.named) == sorted(raw)
    for name, spec in FIELDS.items():
        assert loaded.values[name] == raw.get(name, spec.default), name


def test_a_field_added_to_the_schema_appears_without_a_gui_edit():
    base = FIELDS["noise_offset"]
    extra = dataclasses.replace(
        base,
        name="brand_new_knob",
        label="Brand new knob",
        label_ja="新しいつまみ",
        group="Experiments",
        tab="Samples",
        help="A setting the GUI has never heard of.",
    )
    secret = dataclasses.replace(FIELDS["huggingface_token"], name="api_key", advanced=False)
    fields = {**FIELDS, "brand_new_knob": extra, "api_key": secret}
    demo = build_app(AppOptions(lang="en"), api=FakeApi(), fields=fields)
    counts = field_components(demo)
    assert counts["brand_new_knob"] == 1 and counts["api_key"] == 1
    knob = next(b for b in demo.blocks.values() if getattr(b, "elem_id", "") == "field-brand_new_knob")
    assert isinstance(knob, gr.Number) and knob.label == "Brand new knob"
    assert (knob.minimum, knob.maximum) == (base.minimum, base.maximum)
    key = next(b for b in demo.blocks.values() if getattr(b, "elem_id", "") == "field-api_key")
    assert key.type == "password"
    tabs = [b.label for b in demo.blocks.values() if isinstance(b, gr.Tab)]
    # the schema's tabs (no new one for the new field), then the Utilities tab and its tools
    assert tabs[:6] == ["Source Model", "Folders", "Parameters", "Advanced", "Samples", "Utilities"]


def test_tabs_are_kohyas_in_kohyas_order(page):
    tabs = [b.label for b in page.blocks.values() if isinstance(b, gr.Tab)]
    assert tabs[:4] == ["Source Model", "Folders", "Parameters", "Advanced"]


def test_form_groups_problems_under_their_group():
    with gr.Blocks():
        form = Form(FIELDS)
        for tab in ("Parameters",):
            form.render_tab(tab, "en")
    from trainer.config import Problem

    boxes = form.error_texts([Problem("learning_rate", "5 is not allowed")], "en")
    texts = {key: boxes[box] for key, box in form.group_errors.items()}
    assert texts[("Parameters", "Optimizer")] == "⚠️ **Learning rate**: 5 is not allowed  "
    assert all(v == "" for k, v in texts.items() if k != ("Parameters", "Optimizer"))
