"""What a run has said so far, folded from the trainer's events: `RunState` and its log.

The log keeps each event as a key of the translation table and the event's own data
(`LogLine`), never as English sentences, so the run panel says it in the page's language
(a browser tab in Japanese and one in English read the same run). Where the engine gives
only free text (a warning, a log note, an error's detail), the line is that text behind
a translated lead-in. Plain data: no Gradio, no threads (the Runner holds the lock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lora_gui.i18n import t
from lora_gui.summary import note_text
from trainer.api import Event

ACTIVE = ("running", "stopping")
Log = Callable[..., None]  # log(key, **data)


@dataclass(frozen=True)
class LogLine:
    """One line of the run log: when, what (a key of the translation table), its data.

    "log.note" lines hold a plan note (`summary.note_text` says it)."""

    time: str
    key: str
    data: dict[str, Any] = field(default_factory=dict)

    def text(self, lang: str = "en") -> str:
        if self.key == "log.note":
            return f"{self.time} " + t("log.warning", lang, text=note_text(self.data, lang))
        return f"{self.time} " + t(self.key, lang, **self.data)


@dataclass
class RunState:
    """A copy of what the run panel shows; `version` grows with every change."""

    status: str = "idle"  # idle, running, stopping, finished, stopped, failed
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    epochs: int = 0
    it_per_s: float | None = None
    eta_s: float | None = None
    losses: list[tuple[int, float, float]] = field(default_factory=list)  # step, loss, avg
    logs: list[str] = field(default_factory=list)  # the log in English (`lines`: any language)
    lines: list[LogLine] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    state_dir: str = ""  # the newest training-state folder saved (what Resume takes)
    save_state: bool = False  # whether the run saves its training state (Stop included)
    samples: list[dict[str, Any]] = field(default_factory=list)  # sample events' data, in order
    output_dir: str = ""  # the run's output folder (from its config): files served come from here
    error: dict[str, Any] | None = None  # {"message", "hint", "log_file"} (+ "key", "data")
    final_path: str = ""
    version: int = 0
    run_id: int = 0

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def percent(self) -> float:
        return 100.0 * self.step / self.total_steps if self.total_steps else 0.0


def said(key: str, hint_key: str, **data: Any) -> dict[str, Any]:
    """An error the GUI itself reports, as an error event's data: the English words (what
    tests and bug reports read) and the table keys that say it in the page's language.
    `data["what"]`, when given, is itself a key ("run.what.training")."""
    english = {**data, "what": t(data["what"], "en")} if "what" in data else data
    return {
        "message": t(key, "en", **english),
        "hint": t(hint_key, "en"),
        "log_file": "",
        "key": key,
        "data": {**data, "hint_key": hint_key},
    }


def _step(s: RunState, d: dict[str, Any], log: Log, quiet: set[str]) -> None:
    s.step = int(d.get("step", s.step))
    s.total_steps = int(d.get("total_steps") or s.total_steps)
    s.epoch = int(d.get("epoch", s.epoch))
    s.epochs = int(d.get("epochs") or s.epochs)
    s.it_per_s = d.get("it_per_s")
    s.eta_s = d.get("eta_s")
    if d.get("loss") is not None:
        loss = float(d["loss"])
        avg = float(d["avg_loss"]) if d.get("avg_loss") is not None else loss
        s.losses.append((s.step, loss, avg))


def _plan(s: RunState, d: dict[str, Any], log: Log, quiet: set[str]) -> None:
    s.total_steps = int(d.get("total_steps") or s.total_steps)
    s.epochs = int(d.get("epochs") or s.epochs)
    log("log.plan", images=d.get("images", "?"), steps=s.total_steps, epochs=s.epochs)
    for note in d.get("notes") or []:  # the plan's advice by its code; its warning events follow
        quiet.add(str(note.get("text", "")))
        log("log.note", **note)


def _started(s: RunState, d: dict[str, Any], log: Log, quiet: set[str]) -> None:
    out = Path(str(d.get("output_dir", ""))) / str(d.get("output_name", ""))
    log("log.started", device=d.get("device", "?"), output=str(out))


def _epoch(s: RunState, d: dict[str, Any], log: Log, quiet: set[str]) -> None:
    s.epoch = int(d.get("epoch", s.epoch))
    epochs, avg = d.get("epochs", s.epochs), d.get("avg_loss")
    if avg is None:
        log("log.epoch", epoch=s.epoch, epochs=epochs)
    else:
        log("log.epoch_loss", epoch=s.epoch, epochs=epochs, loss=float(avg))


def _saved(s: RunState, d: dict[str, Any], log: Log, quiet: set[str]) -> None:
    path = str(d.get("path", ""))
    if d.get("state"):  # a training-state folder: what Resume takes, nothing to download
        s.state_dir = path
        log("log.saved_state", path=path)
        return
    if path and path not in s.saved:
        s.saved.append(path)
    log("log.saved", path=path)


def _sample(s: RunState, d: dict[str, Any], log: Log, quiet: set[str]) -> None:
    if d.get("path"):
        s.samples.append(
            {
                "path": str(d["path"]),
                "prompt": str(d.get("prompt", "")),
                "step": int(d.get("step") or 0),
                "epoch": d.get("epoch"),
                "index": int(d.get("index") or 0),
            }
        )
    log("log.sample", path=d.get("path", ""))


def _note(kind: str) -> Callable[[RunState, dict[str, Any], Log, set[str]], None]:
    def fold(s: RunState, d: dict[str, Any], log: Log, quiet: set[str]) -> None:
        message = str(d.get("message", ""))
        if message not in quiet:
            log("log.warning" if kind == "warning" else "log.info", text=message)

    return fold


def _error(s: RunState, d: dict[str, Any], log: Log, quiet: set[str]) -> None:
    s.error = {
        "message": str(d.get("message", "")),
        "hint": str(d.get("hint") or ""),
        "log_file": str(d.get("log_file") or ""),
    }
    if d.get("key"):  # one of the GUI's own errors (`said`)
        s.error.update(key=d["key"], data=dict(d.get("data") or {}))
    s.status = "failed"
    log("log.error", text=s.error["message"])


def _finished(s: RunState, d: dict[str, Any], log: Log, quiet: set[str]) -> None:
    s.status = "finished"
    s.final_path = str(d.get("path", ""))
    s.step = int(d.get("steps") or s.total_steps or s.step)
    s.total_steps = s.total_steps or s.step
    log("log.finished", seconds=float(d.get("seconds") or 0), path=s.final_path)


def _stopped(s: RunState, d: dict[str, Any], log: Log, quiet: set[str]) -> None:
    s.status = "stopped"
    s.final_path = str(d.get("path") or "")
    s.step = int(d.get("step") or s.step)
    log("log.stopped", step=s.step, path=s.final_path)


FOLDS = {
    "step": _step,
    "plan": _plan,
    "started": _started,
    "epoch": _epoch,
    "saved": _saved,
    "sample": _sample,
    "warning": _note("warning"),
    "log": _note("log"),
    "error": _error,
    "finished": _finished,
    "stopped": _stopped,
}


def fold_event(state: RunState, event: Event, log: Log, quiet: set[str]) -> None:
    """Fold one trainer event into `state`; `log(key, **data)` adds a log line. Warnings
    whose text is in `quiet` were said another way (the plan's notes, the page's)."""
    fold = FOLDS.get(event.kind)
    if fold is not None:
        fold(state, event.data, log, quiet)
