"""What a training run tells whoever started it: the GUI, the CLI, a test.

The trainer calls `on_event(Event)`; the CLI turns events into a progress bar or JSON
lines (`--events jsonl`), the GUI into its run panel. Nobody parses a console.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

EventKind = Literal[
    "started", "plan", "step", "epoch", "sample", "saved", "warning", "log", "error", "finished", "stopped"
]


@dataclass
class Event:
    """One thing that happened. `data` by kind:

    started:  {"output_dir", "output_name", "device"}
    plan:     Plan.to_json()
    step:     {"step", "total_steps", "epoch", "epochs", "loss", "avg_loss", "lr", "it_per_s", "eta_s"}
    epoch:    {"epoch", "epochs", "avg_loss"}
    sample:   {"path", "prompt", "step", "epoch", "index"}   (a preview PNG; epoch is None
              for samples made every N steps or before training, step 0)
    saved:    {"path", "epoch", "step", "final"} (+ "state": True for a training-state folder)
    warning / log: {"message"}
    error:    {"message", "hint", "log_file"}   (a message for a person, never a traceback)
    finished: {"path", "steps", "seconds"}
    stopped:  {"path", "step", "reason"}
    """

    kind: EventKind
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(
            {"kind": self.kind, "time": self.time, **self.data}, ensure_ascii=False, default=str
        )

    @staticmethod
    def from_json(line: str) -> Event:
        obj = json.loads(line)
        kind = obj.pop("kind")
        t = obj.pop("time", time.time())
        return Event(kind, obj, t)


EventCallback = Callable[[Event], None]
