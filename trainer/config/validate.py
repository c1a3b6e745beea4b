"""Turn raw values into a TrainingConfig, reporting every problem at once.

Each problem names the key, the bad value and what is allowed; nothing is silently
corrected (a number written with spaces is an error, not a guess).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from trainer.config.checks import check_config
from trainer.config.model import TrainingConfig
from trainer.config.problems import ConfigError, Problem
from trainer.config.specs import FIELDS

_OTHER_MODEL_FAMILIES = ("flux", "sd3", "hunyuan", "lumina", "anima")


def _pre_check(key: str, value: Any) -> str | None:
    """Catch what pydantic would quietly accept or explain badly."""
    spec = FIELDS[key]
    if key == "LoRA_type" and isinstance(value, str) and value.lower().startswith(_OTHER_MODEL_FAMILIES):
        return (
            f"{value!r} is a LoRA type for another model family; this trainer trains LoRAs for "
            "Stable Diffusion 1.x, 2.x and SDXL (choose Standard, or one of the LyCORIS types)"
        )
    if spec.type in (int, float):
        if isinstance(value, str):
            if value != value.strip():
                return f"{value!r} has spaces around the number; write it as {value.strip()!r}"
            if value == "":
                return f"is empty; it must be {spec.describe_allowed()}"
        if isinstance(value, bool):
            return f"{value!r} is not a number; it must be {spec.describe_allowed()}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value!r} is not a finite number; it must be {spec.describe_allowed()}"
        if spec.type is int and isinstance(value, float) and not value.is_integer():
            return f"{value!r} is not a whole number; it must be {spec.describe_allowed()}"
    return None


def validate_values(values: dict[str, Any]) -> TrainingConfig:
    """Validate known keys (unknown keys must be removed by the caller) and cross-field rules."""
    problems: list[Problem] = []
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key not in FIELDS:
            problems.append(Problem(key, "is not a setting of this trainer"))
            continue
        msg = _pre_check(key, value)
        if msg:
            problems.append(Problem(key, msg))
        else:
            clean[key] = value
    try:
        cfg = TrainingConfig(**clean)
    except ValidationError as exc:
        bad = set()
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else "config"
            bad.add(key)
            spec = FIELDS.get(key)
            allowed = spec.describe_allowed() if spec else ""
            problems.append(Problem(key, f"{err.get('input')!r} is not allowed; it must be {allowed}"))
        # Check the rules between settings too, on the values that were valid, so the
        # user sees every problem in one go.
        rest = _without(clean, bad)
        if rest is not None:
            problems.extend(p for p in check_config(rest)[0] if p.key not in bad)
        raise ConfigError(problems, _without(clean, {p.key for p in problems})) from None
    errors, _warnings = check_config(cfg)
    problems.extend(errors)
    if problems:
        raise ConfigError(problems, _without(clean, {p.key for p in problems}))
    return cfg


def _without(clean: dict[str, Any], bad: set[str]) -> TrainingConfig | None:
    """The settings with the `bad` ones at their defaults (not checked against each other)."""
    try:
        return TrainingConfig(**{k: v for k, v in clean.items() if k not in bad})
    except ValidationError:
        return None
