"""The run's Accelerator, made anew for every run of a process.

The app trains inside its own process, one Start after another. accelerate keeps its
state (mixed precision, the gradient-accumulation state) in shared class attributes, so a
second `Accelerator(mixed_precision=...)` with another precision raises "AcceleratorState
has already been initialized". Each run therefore starts from a fresh state; the process
group of a multi-process launch (PartialState) is kept, since it belongs to the process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from accelerate import Accelerator

    from trainer.config import TrainingConfig


def make_accelerator(cfg: TrainingConfig) -> Accelerator:
    """An Accelerator for `cfg`, whatever runs this process made before."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
