"""Learning-rate schedules as pure functions of the step (no torch), with linear warmup.

The warmup ramps (step + 1) / warmup so that the first step already learns (diffusers'
schedules start at exactly 0, which wastes the first step).
"""
from __future__ import annotations

import math


def lr_factor(step: int, *, name: str, total_steps: int, warmup_steps: int,
              num_cycles: int = 1, power: float = 1.0) -> float:
    """The learning-rate multiplier at `step` (0-based) for a scheduler name, with linear warmup."""
    if name in ("constant", "adafactor"):
        # adafactor: the optimizer picks its own step size (see trainer.optim.make_scheduler).
        return 1.0
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if name == "constant_with_warmup":
        return 1.0
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
    if name == "polynomial":
        return max(0.0, (1.0 - progress)) ** power
    raise ValueError(f"unknown lr_scheduler {name!r}")


def warmup_steps_for(total_steps: int, lr_warmup_percent: int, lr_warmup_steps: int) -> int:
    """Warmup length: an explicit step count wins; else a percent of the total (Kohya GUI)."""
    if lr_warmup_steps > 0:
        return min(lr_warmup_steps, total_steps)
    return math.ceil(total_steps * lr_warmup_percent / 100)
