"""Presets as values: a flat dict with Kohya key names <-> TrainingConfig.

Kohya GUI presets are migrated by `trainer.config.kohya`; unknown keys are reported, never
silently dropped; secrets are never part of a preset. Reading and writing the files is
`trainer.presets`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainer.config.checks import check_config
from trainer.config.kohya import migrate_kohya
from trainer.config.model import TrainingConfig
from trainer.config.problems import ConfigError, Problem
from trainer.config.specs import FIELDS, SECRET_KEYS
from trainer.config.sweep import SWEEP_KEY, sweep_problems, variant_count
from trainer.config.validate import validate_values

# A preset is flat: a value is a number, text, a switch, or at most a small list/object.
_MAX_DEPTH = 16


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (no recursion: any depth is safe)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > _MAX_DEPTH:
                break
            todo.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def split_settings(raw: Any, fields: Mapping[str, Any] = FIELDS) -> tuple[dict[str, Any], list[str]]:
    """A preset or Kohya GUI dict -> (our settings it names, notes).

    The notes say what the Kohya migration changed and which keys this trainer does not use.
    Raises ConfigError when `raw` is not a JSON object or its "sweep" is unusable."""
    if not isinstance(raw, dict):
        raise ConfigError([Problem("preset", "must be a JSON object of settings")])
    if _depth(raw) > _MAX_DEPTH:
        raise ConfigError(
            [Problem("preset", f"is nested more than {_MAX_DEPTH} levels deep; a preset is a flat object")]
        )
    notes = []
    if SWEEP_KEY in raw:  # a sweep varies settings over several runs (trainer.config.sweep)
        if problems := sweep_problems(raw[SWEEP_KEY]):
            raise ConfigError(problems)
        notes.append(
            f"sweep: {variant_count(raw[SWEEP_KEY])} variant(s); one run trains the preset's own values, "
            "`python -m trainer queue add PRESET` queues every variant"
        )
        raw = {k: v for k, v in raw.items() if k != SWEEP_KEY}
    values, migration_notes = migrate_kohya(raw, fields)
    notes += [f"migrated: {n}" for n in migration_notes]
    unknown = sorted(k for k in values if k not in fields)
    if unknown:
        notes.append(f"{len(unknown)} key(s) not used by this trainer (ignored): " + ", ".join(unknown))
    return {k: v for k, v in values.items() if k in fields}, notes


def config_from_dict(raw: dict[str, Any]) -> tuple[TrainingConfig, list[str]]:
    """Migrate, split off unknown keys, validate. Returns (config, warnings)."""
    known, warnings = split_settings(raw)
    cfg = validate_values(known)
    warnings.extend(check_config(cfg)[1])
    return cfg, warnings


def preset_dict(cfg: TrainingConfig) -> dict[str, Any]:
    """All settings as a flat dict, without secrets."""
    return {k: v for k, v in cfg.model_dump().items() if k not in SECRET_KEYS}
