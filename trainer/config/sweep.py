"""Sweeps: a preset's `"sweep"` key varies settings, one run per combination.

    "sweep": {"network_alpha": [50, 80, 200], "num_repeats": [40, 50]}

is the Cartesian product of its lists: 6 variants, each the preset with those values,
named `<output_name>-network_alpha50-num_repeats40` and so on, with the values it varies
in `sweep_values` (JSON, written in the LoRA's metadata as ss_sweep). The queue
(trainer.queue) adds each variant as its own entry. Pure: reads only the schema.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainer.config.problems import Problem
from trainer.config.specs import FIELDS, SECRET_KEYS

SWEEP_KEY = "sweep"
MAX_VARIANTS = 256  # a night of runs is a few dozen; more is a typo in a list
# settings a sweep cannot vary: where the runs go and read from is the preset's
_FIXED = {"output_name", "output_dir", "sweep_values", "resume"}


@dataclass(frozen=True)
class Variant:
    """One combination: its name (the output name), the values it varies, its settings."""

    name: str
    values: dict[str, Any]
    settings: dict[str, Any]


def sweep_problems(sweep: Any) -> list[Problem]:
    """What is wrong with a `"sweep"` value, every problem at once (empty: usable)."""
    if not isinstance(sweep, dict):
        return [
            Problem(SWEEP_KEY, 'must be an object of setting: [values], e.g. {"network_alpha": [50, 80]}')
        ]
    problems = []
    for key, values in sweep.items():
        if key not in FIELDS or key in SECRET_KEYS:
            problems.append(Problem(SWEEP_KEY, f"{key!r} is not a setting of this trainer"))
        elif key in _FIXED:
            problems.append(
                Problem(SWEEP_KEY, f"{key} cannot be swept (every variant gets its own output name)")
            )
        elif not isinstance(values, list) or not values:
            problems.append(Problem(SWEEP_KEY, f"{key} must be a list of one or more values, e.g. [50, 80]"))
        elif any(isinstance(v, dict | list) or v is None for v in values):
            problems.append(Problem(SWEEP_KEY, f"{key}: each value must be a number, text or true/false"))
        elif len(set(map(json.dumps, values))) != len(values):
            problems.append(Problem(SWEEP_KEY, f"{key} lists a value twice"))
    if not problems and variant_count(sweep) > MAX_VARIANTS:
        problems.append(
            Problem(
                SWEEP_KEY, f"makes {variant_count(sweep)} runs, more than {MAX_VARIANTS}; shorten its lists"
            )
        )
    return problems


def variant_count(sweep: Mapping[str, list]) -> int:
    count = 1
    for values in sweep.values():
        count *= len(values)
    return count


def _shown(value: Any) -> str:
    """A value as it reads in a file name: 50, 0.0001, true, adamw8bit (other characters as _)."""
    text = json.dumps(value) if isinstance(value, bool) else str(value)
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    return re.sub(r"[^A-Za-z0-9.+-]", "_", text)


def variant_name(output_name: str, values: Mapping[str, Any]) -> str:
    """`mychar` + {"network_alpha": 50} -> `mychar-network_alpha50`."""
    return output_name + "".join(f"-{key}{_shown(value)}" for key, value in values.items())


def expand_sweep(raw: dict[str, Any]) -> list[Variant]:
    """The variants of a preset dict: one without a sweep is one variant of itself.
    The sweep must have no problems (`sweep_problems`)."""
    settings = {k: v for k, v in raw.items() if k != SWEEP_KEY}
    sweep = raw.get(SWEEP_KEY) or {}
    output_name = str(settings.get("output_name") or FIELDS["output_name"].default)
    if not sweep:
        return [Variant(output_name, {}, settings)]
    out = []
    for combo in itertools.product(*sweep.values()):
        values = dict(zip(sweep, combo, strict=True))
        name = variant_name(output_name, values)
        varied = {**settings, **values, "output_name": name, "sweep_values": json.dumps(values)}
        out.append(Variant(name, values, varied))
    return out
