"""Schema field -> widget, and where a field's problems are shown.

Every widget is derived from a `FieldSpec`: bool -> Checkbox, choices -> Dropdown,
int/float -> Number with the schema's range, str -> Textbox (password for secrets). The
label and the info text are the schema's, in the page's language. Nothing about a field
(default, range, label, help) is written here: a field added to the schema appears on the
page with no edit to this file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from lora_gui.i18n import field_help, field_label, group_name, t
from lora_gui.values import problem_text
from trainer.config import FieldSpec

Translation = Callable[[str], dict[str, Any]]


def _classes(spec: FieldSpec) -> list[str]:
    """CSS classes of a field's block (app.CSS lays the fields of a group out in columns)."""
    if spec.type is bool:
        return ["lora-field", "lora-check"]
    wide = bool(spec.widget and (spec.widget.startswith("path") or spec.widget == "textarea"))
    return ["lora-field", "lora-wide"] if wide else ["lora-field"]


def number_step(spec: FieldSpec) -> float:
    """The spinner step: 1 for whole numbers, the default's order of magnitude for floats."""
    if spec.type is int:
        return 1
    default = float(spec.default or 0)
    if default == 0:
        return 0.01
    return 10.0 ** math.floor(math.log10(abs(default)))


def make_widget(spec: FieldSpec, lang: str, value: Any = None) -> gr.components.Component:
    """The widget for one schema field, labelled in `lang`, showing `value` (default if None)."""
    shown = spec.default if value is None else value
    common = {
        "label": field_label(spec, lang),
        "info": field_help(spec, lang),  # one line until hovered (app.CSS)
        "elem_id": f"field-{spec.name}",
        "elem_classes": _classes(spec),
    }
    if spec.type is bool:
        return gr.Checkbox(value=bool(shown), **common)
    if spec.choices:
        return gr.Dropdown(choices=list(spec.choices), value=shown, **common)
    if spec.suggestions:  # the usual values offered, any other text accepted
        return gr.Dropdown(choices=list(spec.suggestions), value=shown, allow_custom_value=True, **common)
    if spec.type in (int, float):
        # The range reaches the browser (spinner limits); events that read the form pass
        # preprocess=False, so a value out of range reaches our validation, which names
        # the field next to it, instead of Gradio's anonymous pop-up blocking every button.
        return gr.Number(
            value=shown, minimum=spec.minimum, maximum=spec.maximum, step=number_step(spec), **common
        )
    is_path = bool(spec.widget and spec.widget.startswith("path"))
    return gr.Textbox(
        value="" if shown is None else str(shown),
        type="password" if spec.secret else "text",
        lines=4 if spec.widget == "textarea" else 1,
        min_width=320 if is_path else 160,
        scale=2 if is_path else 1,
        **common,
    )


@dataclass
class Form:
    """The rendered fields of every tab, and what a language switch must relabel."""

    fields: Mapping[str, FieldSpec]
    widgets: dict[str, gr.components.Component] = field(default_factory=dict)
    group_errors: dict[tuple[str, str], gr.Markdown] = field(default_factory=dict)
    translations: list[tuple[Any, Translation]] = field(default_factory=list)
    # Called after each widget is made, inside its row (the 📂 buttons of path fields).
    decorate: Callable[[FieldSpec, Any], None] | None = None

    def groups(self, tab: str) -> list[str]:
        """The groups of `tab` in schema order."""
        seen: dict[str, None] = {}
        for spec in self.fields.values():
            if spec.tab == tab:
                seen.setdefault(spec.group, None)
        return list(seen)

    def render_tab(
        self,
        tab: str,
        lang: str,
        values: Mapping[str, Any] | None = None,
        after_group: Mapping[str, Callable[[], None]] | None = None,
    ) -> None:
        """Render `tab`'s fields group by group inside the current Blocks context.

        Advanced fields of a group sit in a closed accordion under it; each group ends
        with an (empty) Markdown where its fields' problems appear; `after_group[g]()`
        renders extra components (the model check, the dataset summary) after group g."""
        values = values or {}
        for group in self.groups(tab):
            specs = [s for s in self.fields.values() if s.tab == tab and s.group == group]
            basic = [s for s in specs if not s.advanced]
            advanced = [s for s in specs if s.advanced]
            if basic:
                header = gr.Markdown(f"#### {group_name(group, lang)}")
                self.translations.append((header, lambda lg, g=group: {"value": f"#### {group_name(g, lg)}"}))
                self._render_row(basic, lang, values)
            if advanced:
                # "More Optimizer settings" under a group; a group of advanced fields only
                # is one closed accordion with the group's own name.
                def title(lg: str, g: str = group, alone: bool = not basic) -> str:
                    return group_name(g, lg) if alone else t("more", lg, group=group_name(g, lg))

                acc = gr.Accordion(title(lang), open=False)
                with acc:
                    self._render_row(advanced, lang, values)
                self.translations.append((acc, lambda lg, f=title: {"label": f(lg)}))
            self.group_errors[(tab, group)] = gr.Markdown(
                "", elem_id=f"errors-{tab}-{group}".replace(" ", "_"), elem_classes=["field-errors"]
            )
            if after_group and group in after_group:
                after_group[group]()

    def _render_row(self, specs: Sequence[FieldSpec], lang: str, values: Mapping[str, Any]) -> None:
        # One row per group; app.CSS turns it into columns that wrap (checkboxes last).
        ordered = [s for s in specs if s.type is not bool] + [s for s in specs if s.type is bool]
        with gr.Row(equal_height=False, elem_classes=["lora-row"]):
            for spec in ordered:
                widget = make_widget(spec, lang, values.get(spec.name))
                self.widgets[spec.name] = widget
                if self.decorate is not None:
                    self.decorate(spec, widget)
                self.translations.append(
                    (widget, lambda lg, s=spec: {"label": field_label(s, lg), "info": field_help(s, lg)})
                )

    def read(self, data: Mapping[Any, Any]) -> dict[str, Any]:
        """Every field's raw value, by field name, from an event's inputs keyed by component."""
        return {name: data[widget] for name, widget in self.widgets.items()}

    def show(self, values: Mapping[str, Any]) -> dict[gr.components.Component, Any]:
        """{widget: value} for every field of the form that `values` names."""
        return {w: values[name] for name, w in self.widgets.items() if name in values}

    def error_markdowns(self) -> list[gr.Markdown]:
        return list(self.group_errors.values())

    def error_texts(self, problems: Sequence[Any], lang: str) -> dict[gr.Markdown, str]:
        """Every group's error box -> its Markdown for `problems` (empty when the group has none)."""
        by_group: dict[tuple[str, str], list[str]] = {k: [] for k in self.group_errors}
        for problem in problems:
            spec = self.fields.get(getattr(problem, "key", ""))
            if spec is not None and (spec.tab, spec.group) in by_group:
                by_group[(spec.tab, spec.group)].append(problem_text(problem, lang, self.fields))
        return {
            self.group_errors[key]: "\n".join(f"⚠️ {line}  " for line in lines)
            for key, lines in by_group.items()
        }
