"""Presets in the GUI: list, load into the form, save, import a Kohya GUI file.

Loading is forgiving where training is not: a preset with an empty image folder still
fills the form (the form then says "choose the image folder"), a Kohya GUI preset is
migrated by the trainer's own rules, and every key or value that could not be used is
reported, never dropped in silence. Saving goes through `trainer.config.save_preset`,
which never writes secrets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lora_gui.i18n import t
from lora_gui.values import problems_markdown, validate_form
from trainer.config import FIELDS, ConfigError, FieldSpec, Problem, TrainingConfig, split_settings
from trainer.config.checks import output_name_problem
from trainer.presets import read_preset_json, save_preset

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "presets"
DEFAULT_USER_DIR = Path.home() / ".lora_gui" / "presets"


class PresetError(Exception):
    """A preset file that cannot be read or saved; the message is for the user."""


@dataclass
class LoadedPreset:
    """A preset as the form shows it.

    values: every field (the preset's value, else the default); named: the fields the
    preset set; notes: migrations, unknown keys and unusable values; unusable: (field,
    value, what is allowed) of the values the form cannot show (also in notes, in
    English); problems: what
    validation says about the loaded values (shown, not blocking the load)."""

    values: dict[str, Any]
    named: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    unusable: list[tuple[str, str, str]] = field(default_factory=list)  # field, value, allowed

    def changes(self, fields: Mapping[str, FieldSpec] = FIELDS) -> dict[str, Any]:
        """What loading the file into a filled form changes: the values the file sets.

        As in the Kohya GUI, every setting the file does not set keeps its current value;
        a path the file leaves empty (a template's model or folders) counts as not set."""
        out = {}
        for key in self.named:
            spec = fields[key]
            is_path = bool(spec.widget and spec.widget.startswith("path"))
            if not (is_path and not str(self.values[key]).strip()):
                out[key] = self.values[key]
        return out

    def engine_notes(self) -> list[str]:
        """The notes the engine wrote (migrations, unknown keys), without the unusable values."""
        ours = len(self.unusable)
        return self.notes[: len(self.notes) - ours] if ours else list(self.notes)


def list_presets(user_dir: Path, lang: str, shipped_dir: Path = SHIPPED_DIR) -> list[tuple[str, str]]:
    """(label, path) of every shipped and user preset, shipped first, by name."""
    out: list[tuple[str, str]] = []
    for folder, key in ((shipped_dir, "preset.shipped"), (user_dir, "preset.user")):
        if folder.is_dir():
            for path in sorted(folder.glob("*.json"), key=lambda p: p.stem.lower()):
                out.append((t(key, lang, name=path.stem), str(path)))
    return out


def _usable(spec: FieldSpec, value: Any) -> bool:
    """Whether the widget of `spec` can show `value` (validation judges the rest)."""
    if spec.choices:
        return value in spec.choices and type(value) is type(spec.choices[0])
    if spec.type is bool:
        return isinstance(value, bool)
    if spec.type in (int, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if spec.type is str:
        return isinstance(value, str)
    return True


def _message(exc: ConfigError) -> str:
    return "; ".join(p.message for p in exc.problems)


def preset_values(
    raw: Any, fields: Mapping[str, FieldSpec] = FIELDS, source: str = "a preset"
) -> LoadedPreset:
    """A preset or Kohya GUI dict -> the form's values and what to tell the user.

    The engine migrates Kohya keys and names the unknown ones; a value the widget cannot
    show keeps the default, with a note (`source` names the preset in messages)."""
    try:
        known, notes = split_settings(raw, fields)
    except ConfigError as exc:
        raise PresetError(f"{source} {_message(exc)}") from None
    values = {name: spec.default for name, spec in fields.items()}
    loaded = LoadedPreset(values=values, notes=notes)
    for key, value in known.items():
        spec = fields[key]
        if _usable(spec, value):
            values[key] = value
            loaded.named.append(key)
        else:
            allowed = spec.describe_allowed()
            loaded.notes.append(t("preset.unusable", "en", field=key, value=repr(value), allowed=allowed))
            loaded.unusable.append((key, repr(value), allowed))
    _, loaded.problems = validate_form({k: v for k, v in values.items() if k in FIELDS})
    return loaded


def read_preset(path: str | Path, fields: Mapping[str, FieldSpec] = FIELDS) -> LoadedPreset:
    """Read a preset or Kohya GUI JSON file into form values."""
    try:
        raw = read_preset_json(path)
    except ConfigError as exc:
        raise PresetError(_message(exc)) from None
    return preset_values(raw, fields, source=Path(path).name)


def _template_config(values: Mapping[str, Any], problems: list[Problem]) -> TrainingConfig | None:
    """A config for a preset whose only problems are empty folder/model paths (a template
    to fill in later), else None."""
    for p in problems:
        spec = FIELDS.get(p.key)
        is_path = spec is not None and bool(spec.widget and spec.widget.startswith("path"))
        if not is_path or str(values.get(p.key, "")).strip():
            return None
    try:
        return TrainingConfig(**{k: v for k, v in values.items() if k in FIELDS})
    except ValidationError:
        return None


def save_user_preset(values: Mapping[str, Any], name: str, user_dir: Path, lang: str = "en") -> Path:
    """Save the form as `<user_dir>/<name>.json` (no secrets).

    Raises PresetError (a bad name) or returns only after the values validated; empty
    model/folder paths are allowed so that a preset can be a template."""
    reason = output_name_problem(name.strip() if name else "")
    if reason or name.strip().lower().endswith(".json"):
        raise PresetError(t("preset.bad_name", lang, reason=reason or t("preset.json_suffix", lang)))
    cfg, problems = validate_form(values)
    if cfg is None:
        cfg = _template_config(values, problems)
    if cfg is None:
        raise PresetError(t("preset.not_saved", lang) + "\n\n" + problems_markdown(problems, lang))
    return save_preset(cfg, Path(user_dir) / f"{name.strip()}.json")
