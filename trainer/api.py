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
    "make_plan",
    "preflight",
    "run_training",
]

if TYPE_CHECKING:
    from trainer.plan.training_plan import Plan


def make_plan(cfg: TrainingConfig) -> Plan:
    """The dry-run plan: the dataset resolved once (a dataset TOML applied, folders
    scanned, images bucketed), then its steps, buckets and saves. Loads no model.

    Raises trainer.data.folders.DatasetError for a missing or badly laid out folder or an
    unusable dataset TOML."""
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


def run_training(cfg: TrainingConfig, on_event: EventCallback, stop: threading.Event | None = None) -> int:
    """Train, reporting through `on_event`; blocks until done. Returns 0 done / stopped,
    1 training failure, 2 config or dataset problem. Never raises for those: an "error"
    event carries a message for a person (the traceback goes to the log file)."""
    from trainer.run.train import train_with_events

    return train_with_events(cfg, on_event, stop)
