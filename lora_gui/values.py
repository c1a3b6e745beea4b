"""Form values <-> config values, and problems as text: the GUI's plain-data layer.

No Gradio here, so presets, summaries and handlers can be used (and tested) without a
page. An emptied number field arrives as None and is reported as empty, never guessed.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from lora_gui.i18n import field_label
from trainer.config import FIELDS, ConfigError, FieldSpec, Problem, TrainingConfig, validate_values


def widget_value(spec: FieldSpec, value: Any) -> Any:
    """A config value as its widget shows it."""
    if spec.type is str and value is None:
        return ""
    return value


def form_values(raw: Mapping[str, Any], fields: Mapping[str, FieldSpec] = FIELDS) -> dict[str, Any]:
    """Widget values by field name -> a dict for `validate_values`.

    An emptied Number arrives as None; it becomes "" so validation says 'is empty'."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None and fields[name].type in (int, float, str):
            value = ""
        out[name] = value
    return out


def config_values(cfg: TrainingConfig, fields: Mapping[str, FieldSpec] = FIELDS) -> dict[str, Any]:
    """A config -> every field's widget value by name (the round trip of `form_values`)."""
    dumped = cfg.model_dump()
    return {n: widget_value(spec, dumped.get(n, spec.default)) for n, spec in fields.items()}


def validate_form(values: Mapping[str, Any]) -> tuple[TrainingConfig | None, list[Problem]]:
    """(config, []) when the values are valid, else (None, every problem)."""
    try:
        return validate_values(dict(values)), []
    except ConfigError as exc:
        return None, list(exc.problems)


def md_text(text: Any) -> str:
    """Engine or user text for a Markdown component, shown whole: `<repeats>_<name>` is not
    read as an HTML tag (which the page would drop with the rest of the line), `code`
    spans stay code, and each line of the text stays a line."""
    parts = str(text).split("`")
    for i, part in enumerate(parts):
        if i % 2 == 0 or i == len(parts) - 1:  # outside a code span (or an unclosed one)
            parts[i] = html.escape(part, quote=False)
    return "  \n".join(line.rstrip() for line in "`".join(parts).splitlines())


def problem_text(problem: Any, lang: str, fields: Mapping[str, FieldSpec] = FIELDS) -> str:
    """One problem as '**Label**: message': the field's label in `lang` leads the engine's
    own words (the key itself when it is no field)."""
    key = getattr(problem, "key", "")
    message = md_text(getattr(problem, "message", str(problem)))
    spec = fields.get(key)
    name = field_label(spec, lang) if spec else key
    return f"**{name}**: {message}" if name else message


def problems_markdown(problems: Sequence[Any], lang: str, fields: Mapping[str, FieldSpec] = FIELDS) -> str:
    """Every problem as a bulleted Markdown list naming the fields' labels."""
    return "\n".join(f"- {problem_text(p, lang, fields)}" for p in problems)
