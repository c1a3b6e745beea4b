"""The trainer's small public API, the only door the GUI uses.

Nothing here imports torch at import time: planning and checks stay instant, and the
heavy modules load when a run starts.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from trainer.config import TrainingConfig
from trainer.events import Event, EventCallback
from trainer.launch import accelerate_command

__all__ = [
    "Event",
    "EventCallback",
    "accelerate_command",
    "detect_model",
    "estimate",
    "make_plan",
    "preflight",
    "run_training",
]

if TYPE_CHECKING:
    from trainer.plan.training_plan import Plan


def make_plan(cfg: TrainingConfig) -> Plan:
    """The dry-run plan: dataset scan, buckets, steps, saves. Loads no model.

    Raises trainer.data.folders.DatasetError for a missing or badly laid out folder."""
    from trainer.plan.training_plan import build_plan

    return build_plan(cfg)


def preflight(cfg: TrainingConfig) -> tuple[list, list[str]]:
    """Disk and device checks before any model loads: (problems, warnings)."""
    from trainer.run.preflight import run_preflight

    return run_preflight(cfg)


def detect_model(path: str):
    """What kind of base model `path` is (no weights loaded): trainer.models ModelInfo."""
    from trainer.models import detect_model as _detect

    return _detect(path)


def estimate(cfg: TrainingConfig, vram_gib: float | None = None, *, gpu: str | None = None, plan=None):
    """Peak GPU memory, fit on `vram_gib` GiB and time of this run, before anything loads:
    a trainer.estimate.Estimate (`.to_json()`). Seconds the first time (the run's own step
    on shape-only tensors), instant for settings already estimated. `plan` (make_plan's)
    gives the largest bucket, image count and step count. Raises ModelLoadError / ConfigError."""
    from trainer.estimate import estimate as _estimate

    return _estimate(cfg, vram_gib, gpu=gpu, plan=plan)


def run_training(cfg: TrainingConfig, on_event: EventCallback, stop: threading.Event | None = None) -> int:
    """Train, reporting through `on_event`; blocks until done. Returns 0 done / stopped,
    1 training failure, 2 config or dataset problem. Never raises for those: an "error"
    event carries a message for a person (the traceback goes to the log file)."""
    from trainer.run.train import train_with_events

    return train_with_events(cfg, on_event, stop)
