"""`optimizer_args` as data, and the rules between an optimizer and its schedule (no torch).

Kohya's "Optimizer extra arguments" field is a space-separated list of key=value pairs
(`weight_decay=0.01 betas=0.9,0.99 relative_step=False`). It is parsed here as plain
values (numbers, booleans, tuples, words), never evaluated as code, so the config check,
the dry-run plan and the optimizer factory all read it the same way.

The rules encode what Kohya users run into (docs/ANCHORS.md section 4, the seed guide):
- Adafactor with relative_step on (its default) picks its own step size, so the schedule
  must be the `adafactor` one and a warmup cannot apply: in the Kohya GUI a warmup
  other than 0 crashes the run. Here it is refused up front with the two combinations
  that work.
- Learning-rate-free optimizers (Prodigy, D-Adaptation) expect a learning rate near 1.
- Schedule-free optimizers follow no LR schedule (sd-scripts gives them a constant one), so
  a schedule or warmup chosen with them is said to have no effect.
"""

from __future__ import annotations

from typing import Any

# Optimizers that estimate the step size themselves; their "learning rate" is a multiplier.
LR_FREE = (
    "Prodigy",
    "DAdaptAdam",
    "DAdaptation",
    "DAdaptAdamPreprint",
    "DAdaptAdaGrad",
    "DAdaptAdan",
    "DAdaptAdanIP",
    "DAdaptLion",
    "DAdaptSGD",
    "prodigyplus.ProdigyPlusScheduleFree",
)
# Optimizers that train an average of their iterates: no LR schedule, and the average
# (optimizer.eval()) is what is saved and sampled.
SCHEDULE_FREE = (
    "AdamWScheduleFree",
    "RAdamScheduleFree",
    "SGDScheduleFree",
    "prodigyplus.ProdigyPlusScheduleFree",
)
# Optimizers from bitsandbytes: they need its package and an NVIDIA GPU.
BITSANDBYTES = (
    "AdamW8bit",
    "PagedAdamW8bit",
    "PagedAdamW32bit",
    "Lion8bit",
    "PagedLion8bit",
    "SGDNesterov8bit",
    "bitsandbytes.optim.AdEMAMix8bit",
    "bitsandbytes.optim.PagedAdEMAMix8bit",
)
# Kohya's Adafactor recipe that uses your learning rate (and so allows a warmup).
ADAFACTOR_FIXED_LR_ARGS = "scale_parameter=False relative_step=False warmup_init=False"
ADAFACTOR_RELATIVE_ARGS = "scale_parameter=True relative_step=True warmup_init=False"


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    if "," in text:
        return tuple(_value(p) for p in text.split(",") if p)
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip("\"'")


def parse_args_text(text: str) -> dict[str, Any]:
    """'weight_decay=0.01 betas=0.9,0.99' -> {"weight_decay": 0.01, "betas": (0.9, 0.99)}.

    Raises ValueError naming the first pair that is not key=value.
    """
    out: dict[str, Any] = {}
    for part in text.split():
        key, sep, value = part.partition("=")
        if not sep or not key.isidentifier() or not value:
            raise ValueError(f"{part!r} is not key=value (for example weight_decay=0.01)")
        out[key] = _value(value)
    return out


def adafactor_kwargs(args: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Adafactor's effective arguments, as Kohya sets them, plus notes on what was implied.

    relative_step defaults to True (transformers' default); warmup_init needs it, so
    warmup_init=True turns it on (Kohya does the same and says so).
    """
    kwargs = dict(args)
    notes: list[str] = []
    kwargs.setdefault("relative_step", True)
    if kwargs.get("warmup_init") and not kwargs["relative_step"]:
        kwargs["relative_step"] = True
        notes.append(
            "Adafactor: warmup_init=True needs relative_step=True, so relative_step is on (as in Kohya)"
        )
    return kwargs, notes


def optimizer_rules(
    *,
    optimizer: str,
    optimizer_args: str,
    lr_scheduler: str,
    warmup_steps: int,
    lr_warmup: int,
    learning_rates: dict[str, float],
) -> tuple[list[tuple[str, str]], list[str]]:
    """Problems ((key, message) pairs) and warnings of an optimizer + schedule combination.

    `warmup_steps` is the explicit step count, `lr_warmup` the percentage; either being
    non-zero means a warmup. `learning_rates` maps setting names to their values (0 =
    unused) for the learning-rate-free check.
    """
    errors: list[tuple[str, str]] = []
    warnings: list[str] = []
    try:
        args = parse_args_text(optimizer_args)
    except ValueError as exc:
        return [("optimizer_args", str(exc))], warnings
    warmup = warmup_steps > 0 or lr_warmup > 0
    if optimizer in SCHEDULE_FREE:
        constant = lr_scheduler in ("constant", "constant_with_warmup")
        unused = [] if constant else [f"lr_scheduler '{lr_scheduler}'"]
        if warmup:
            unused.append("the LR warmup")
        if unused:
            verb = "have" if len(unused) > 1 else "has"
            warnings.append(
                f"{optimizer} follows no learning-rate schedule, so {' and '.join(unused)} "
                f"{verb} no effect (as in sd-scripts). AdamWScheduleFree and SGDScheduleFree "
                "take a warmup as warmup_steps=N in Optimizer extra arguments"
            )
    elif lr_scheduler == "adafactor" and optimizer != "Adafactor":
        errors.append(
            (
                "lr_scheduler",
                (
                    f"'adafactor' reads the step size from the Adafactor optimizer; "
                    f"with {optimizer} choose another scheduler (e.g. cosine)"
                ),
            )
        )
    if optimizer == "Adafactor":
        kwargs, notes = adafactor_kwargs(args)
        warnings.extend(notes)
        if kwargs["relative_step"]:
            if warmup:
                errors.append(
                    (
                        "lr_warmup",
                        (
                            "Adafactor with relative_step=True sets its own learning rate, so a warmup "
                            "cannot apply (the Kohya GUI crashes here). Either set LR warmup to 0 and LR "
                            "scheduler to 'adafactor' (Adafactor picks the step size), or keep the warmup "
                            "and set Optimizer "
                            f"extra arguments to '{ADAFACTOR_FIXED_LR_ARGS}' with LR scheduler "
                            "'constant_with_warmup' (your learning rate is used)"
                        ),
                    )
                )
            elif lr_scheduler != "adafactor":
                warnings.append(
                    f"Adafactor with relative_step=True picks its own step size: the '{lr_scheduler}' "
                    "schedule has no effect and the 'adafactor' schedule is used (as in Kohya). "
                    f"To use your learning rate and schedule, add '{ADAFACTOR_FIXED_LR_ARGS}'"
                )
    if optimizer in LR_FREE:
        far = {k: v for k, v in learning_rates.items() if v and not 0.1 <= v <= 10.0}
        if far:
            listed = ", ".join(f"{k} {v:g}" for k, v in far.items())
            warnings.append(
                f"{optimizer} estimates the step size itself and expects learning rates "
                f"around 1.0; {listed} will scale its steps by that much"
            )
    return errors, warnings
