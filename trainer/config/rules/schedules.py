"""Learning-rate schedules as pure functions of the step (no torch), with linear warmup.

The warmup ramps (step + 1) / warmup so that the first step already learns (diffusers'
schedules start at exactly 0, which wastes the first step).

After the warmup, with progress p going 0 -> 1 over the remaining steps and N the
"LR number of cycles" (`lr_scheduler_num_cycles`), the curves are transformers' (which
sd-scripts uses, so a Kohya preset gets the same curve):

| name                 | factor after the warmup                  | `lr_scheduler_args`        |
|----------------------|------------------------------------------|----------------------------|
| constant, constant_  | 1                                        |                            |
| with_warmup          |                                          |                            |
| linear               | 1 - p                                    |                            |
| cosine               | (1 + cos(pi p)) / 2                      |                            |
| cosine_with_restarts | (1 + cos(pi (N p mod 1))) / 2            |                            |
| polynomial           | r + (1 - r) (1 - p)^power, r = lr_end/LR | lr_end (default 0)         |
| cosine_with_min_lr   | r + (1 - r) (1 + cos(pi N p)) / 2        | min_lr_rate r, or min_lr   |
| inverse_sqrt         | 1 / sqrt((step - warmup + T) / T)        | timescale T (default: the  |
|                      |                                          | warmup steps, else 10000)  |
| warmup_stable_decay  | 1 for num_stable_steps, then a decay to  | num_decay_steps (required),|
|                      | min_lr_ratio over num_decay_steps, then  | num_stable_steps, min_lr_  |
|                      | min_lr_ratio                             | ratio, warmup/decay_type   |

min_lr and lr_end are learning rates: as in transformers they become a share of Learning
rate (the optimizer's own), and groups with their own rate (unet_lr, ...) scale alike.
warmup_stable_decay warms up from min_lr_ratio (transformers' shape) with our (step + 1)
convention; its num_decay_steps is a step count, or a fraction of the total when it is
a decimal such as 0.2 (like sd-scripts' lr_decay_steps).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# The extra arguments each schedule takes in `lr_scheduler_args` (all others are refused).
SCHEDULER_ARGS: dict[str, tuple[str, ...]] = {
    "polynomial": ("lr_end",),
    "cosine_with_min_lr": ("min_lr", "min_lr_rate"),
    "inverse_sqrt": ("timescale",),
    "warmup_stable_decay": (
        "num_decay_steps",
        "num_stable_steps",
        "min_lr_ratio",
        "warmup_type",
        "decay_type",
    ),
}
# transformers' arguments that are settings of their own here.
_ARGS_AS_SETTINGS = {
    "num_cycles": "lr_scheduler_num_cycles ('LR number of cycles')",
    "power": "lr_scheduler_power ('LR power')",
    "num_warmup_steps": "lr_warmup_steps or lr_warmup",
    "num_training_steps": "max_train_steps or the epochs",
}
CURVE_TYPES = ("linear", "cosine", "1-sqrt")


def lr_factor(
    step: int,
    *,
    name: str,
    total_steps: int,
    warmup_steps: int,
    num_cycles: int = 1,
    power: float = 1.0,
    args: Mapping[str, Any] | None = None,
    learning_rate: float = 1.0,
) -> float:
    """The learning-rate multiplier at `step` (0-based) for a scheduler name, with linear warmup.

    `args`: the schedule's `lr_scheduler_args` (checked by `scheduler_arg_problems`);
    `learning_rate`: the optimizer's learning rate, for the absolute min_lr / lr_end.
    """
    args = args or {}
    if name in ("constant", "adafactor"):
        # adafactor: the optimizer picks its own step size (see trainer.optim.optimizers.make_scheduler).
        return 1.0
    if name == "warmup_stable_decay":
        return _warmup_stable_decay(step, total_steps, warmup_steps, num_cycles, args)
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if name == "constant_with_warmup":
        return 1.0
    if name == "inverse_sqrt":
        timescale = args.get("timescale") or warmup_steps or 10_000
        return 1.0 / math.sqrt((step - warmup_steps + timescale) / timescale)
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if name == "linear":
        return max(0.0, 1.0 - progress)
    if name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if name == "cosine_with_restarts":
        if progress >= 1.0:
            return 0.0
        return 0.5 * (1.0 + math.cos(math.pi * ((num_cycles * progress) % 1.0)))
    if name == "cosine_with_min_lr":
        floor = _min_lr_rate(args, learning_rate)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * num_cycles * progress))
    if name == "polynomial":
        floor = args.get("lr_end", 0.0) / learning_rate
        return floor + (1.0 - floor) * max(0.0, (1.0 - progress)) ** power
    raise ValueError(f"unknown lr_scheduler {name!r}")


def _min_lr_rate(args: Mapping[str, Any], learning_rate: float) -> float:
    if "min_lr" in args:
        return args["min_lr"] / learning_rate
    return float(args["min_lr_rate"])


def _curve(kind: str, progress: float, num_cycles: int = 1) -> float:
    """A decay shape from 1 at progress 0 to 0 at progress 1."""
    if kind == "linear":
        return 1.0 - progress
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * num_cycles * progress))
    return 1.0 - math.sqrt(progress)  # "1-sqrt"


def _rise(kind: str, progress: float) -> float:
    """A warmup shape from 0 at progress 0 to 1 at progress 1."""
    if kind == "cosine":
        return 0.5 * (1.0 - math.cos(math.pi * progress))
    if kind == "1-sqrt":
        return 1.0 - math.sqrt(1.0 - progress)
    return progress


def wsd_phases(total_steps: int, warmup_steps: int, args: Mapping[str, Any]) -> tuple[int, int]:
    """warmup_stable_decay's (stable steps, decay steps) for a run of `total_steps`."""
    decay = args["num_decay_steps"]
    if isinstance(decay, float):
        decay = round(decay * total_steps)  # a fraction of the run
    stable = args.get("num_stable_steps", total_steps - warmup_steps - decay)
    return stable, decay


def _warmup_stable_decay(
    step: int, total_steps: int, warmup_steps: int, num_cycles: int, args: Mapping[str, Any]
) -> float:
    floor = float(args.get("min_lr_ratio", 0.0))
    stable, decay = wsd_phases(total_steps, warmup_steps, args)
    if step < warmup_steps:
        # from min_lr_ratio up to 1, in the warmup shape
        rise = _rise(args.get("warmup_type", "linear"), (step + 1) / warmup_steps)
        return floor + (1.0 - floor) * rise
    if step < warmup_steps + stable:
        return 1.0
    if step < warmup_steps + stable + decay:
        progress = (step - warmup_steps - stable) / max(1, decay)
        return floor + (1.0 - floor) * _curve(args.get("decay_type", "cosine"), progress, num_cycles)
    return floor


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _value_problem(key: str, value: Any, learning_rate: float) -> str | None:
    """Why one argument's value cannot be used, or None."""
    if key in ("warmup_type", "decay_type"):
        return None if value in CURVE_TYPES else f"must be one of {', '.join(CURVE_TYPES)}"
    if not _number(value):
        return "must be a number"
    if key in ("min_lr_rate", "min_lr_ratio") and not 0 <= value <= 1:
        return "must be between 0 and 1 (a share of the learning rate)"
    if key in ("min_lr", "lr_end") and not 0 <= value < learning_rate:
        return f"must be at least 0 and below the learning rate {learning_rate:g}"
    if key == "timescale" and value <= 0:
        return "must be above 0 (steps)"
    if key == "num_stable_steps" and (not isinstance(value, int) or value < 0):
        return "must be a whole number of steps, 0 or more"
    if key == "num_decay_steps" and not (isinstance(value, int) and value >= 0 or 0 <= value <= 1):
        return "must be a whole number of steps, or a fraction of the run between 0 and 1 (e.g. 0.2)"
    return None


def scheduler_arg_problems(
    name: str,
    args: Mapping[str, Any],
    *,
    learning_rate: float,
    total_steps: int | None = None,
    warmup_steps: int = 0,
) -> list[str]:
    """Every problem of `args` for the schedule `name`, each message starting with its key.

    With `total_steps` (known once the data is read) the phases of warmup_stable_decay are
    checked against the length of the run too.
    """
    allowed = SCHEDULER_ARGS.get(name, ())
    takes = f"it takes {', '.join(allowed)}" if allowed else "it takes none"
    problems = []
    for key, value in args.items():
        if key not in allowed:
            if key in _ARGS_AS_SETTINGS:
                problems.append(f"{key}: is a setting of its own here; use {_ARGS_AS_SETTINGS[key]}")
            else:
                owners = [n for n, keys in SCHEDULER_ARGS.items() if key in keys]
                hint = f"; {key} is for {' and '.join(owners)}" if owners else ""
                problems.append(f"{key}: is not an argument of the '{name}' scheduler ({takes}{hint})")
            continue
        why = _value_problem(key, value, learning_rate)
        if why:
            problems.append(f"{key}={value}: {why}")
    if name == "cosine_with_min_lr":
        given = [k for k in ("min_lr", "min_lr_rate") if k in args]
        if not given:
            problems.append(
                "cosine_with_min_lr needs the lowest learning rate: add min_lr_rate=0.1 "
                "(a share of the learning rate) or min_lr=1e-6"
            )
        elif len(given) == 2:
            problems.append("min_lr, min_lr_rate: give only one of them")
    if name == "warmup_stable_decay" and "num_decay_steps" not in args:
        problems.append(
            "warmup_stable_decay needs num_decay_steps: the length of the final decay, "
            "in steps (e.g. num_decay_steps=200) or as a share of the run (0.2)"
        )
    if problems or total_steps is None or name != "warmup_stable_decay":
        return problems
    stable, decay = wsd_phases(total_steps, warmup_steps, args)
    if stable < 0:
        problems.append(
            f"num_decay_steps: warmup ({warmup_steps}) + decay ({decay}) steps are more "
            f"than the {total_steps} steps of this run"
        )
    return problems


def warmup_steps_for(total_steps: int, lr_warmup_percent: int, lr_warmup_steps: int) -> int:
    """Warmup length: an explicit step count wins; else a percent of the total (Kohya GUI)."""
    if lr_warmup_steps > 0:
        return min(lr_warmup_steps, total_steps)
    return math.ceil(total_steps * lr_warmup_percent / 100)
