"""Two runs in one process (the app's Start, twice) with different mixed precision."""

from __future__ import annotations

from trainer.config import TrainingConfig
from trainer.run.accelerator import make_accelerator


def test_a_second_run_may_change_mixed_precision():
    first = make_accelerator(TrainingConfig(mixed_precision="no"))
    assert first.mixed_precision == "no"
    second = make_accelerator(TrainingConfig(mixed_precision="bf16"))
    assert second.mixed_precision == "bf16"
    third = make_accelerator(TrainingConfig(mixed_precision="no"))
    assert third.mixed_precision == "no" and third.gradient_accumulation_steps == 1
