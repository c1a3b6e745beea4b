"""Running the queue: its entries one after another in this process, unattended.

Each entry trains with trainer.run.train.train_with_events (which frees the GPU when it
returns). One that fails (bad input, out of memory, a crash) is marked failed with its
message and the queue goes on. Stop (Ctrl-C) marks the current entry interrupted (its
LoRA and, with save_state, its state saved); `stop_after_current` in the file ends the
queue once the current entry is done. An entry left "running" by a process that died,
or interrupted, is resumed from its newest `<name>...-state` folder when it saved its
state, else restarted, and its note says which.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from trainer.config import ConfigError, config_from_dict
from trainer.events import Event, EventCallback
from trainer.queue.store import Entry, Queue, QueueError, change_queue, this_runner

TrainFn = Callable[..., int]


def newest_state(settings: dict, since: float | None) -> Path | None:
    """The newest training-state folder the entry's run wrote (`<name>-state`,
    `<name>-000002-state`, `<name>-step00000010-state`, `<name>-stopped-<step>-state`),
    written after `since` (older ones belong to an earlier run of the same name)."""
    out, name = Path(str(settings.get("output_dir", ""))).expanduser(), str(settings.get("output_name", ""))
    if not name or not out.is_dir():
        return None
    found = []
    for folder in out.iterdir():
        info = folder / "state.json"
        if folder.name.startswith(name + "-") and folder.name.endswith("-state") and info.is_file():
            rest = folder.name[len(name) + 1 : -len("-state")]
            if rest and not (rest.isdigit() or rest.startswith(("step", "stopped-"))):
                continue  # another run's name that starts with ours (mychar-network_alpha50)
            mtime = info.stat().st_mtime
            if since is None or mtime >= since - 1:
                found.append((_state_step(info), mtime, folder))
    return max(found)[2] if found else None


def _state_step(info: Path) -> int:
    try:
        return int(json.loads(info.read_text(encoding="utf-8"))["position"]["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def _resume_or_restart(entry: Entry) -> None:
    """An interrupted entry: resume from its newest state when it saves states, else restart."""
    entry.settings.pop("resume", None)
    state = newest_state(entry.settings, entry.started) if entry.settings.get("save_state") else None
    if state is not None:
        entry.settings["resume"] = str(state)
        entry.note = f"resumed from {state.name}"
    else:
        why = (
            "save_state is off" if not entry.settings.get("save_state") else "no training state was saved yet"
        )
        entry.note = f"restarted from the beginning ({why})"
        entry.outputs = []


def _claim(queue: Queue) -> None:
    if queue.runner_alive():
        pid = (queue.runner or {}).get("pid")
        raise QueueError(f"this queue is already running (PID {pid}); wait for it or stop it first")
    queue.runner = this_runner()
    for entry in queue.entries:  # left running by a process that is gone
        if entry.state == "running":
            entry.state = "interrupted"


def _next(queue: Queue) -> Entry | None:
    """Mark the next entry running (resuming an interrupted one) and return a copy of it."""
    if queue.stop_after_current:
        queue.stop_after_current = False
        return None
    for entry in queue.entries:
        if entry.state in ("waiting", "interrupted"):
            if entry.state == "interrupted":
                _resume_or_restart(entry)
            entry.state, entry.message = "running", ""
            entry.started = entry.started or time.time()
            return Entry.from_json(json.loads(json.dumps(entry.__dict__)))
    return None


def _train_one(
    entry: Entry, on_event: EventCallback, stop: threading.Event, train: TrainFn
) -> tuple[str, str, list]:
    """(state, message, saved files) of one run."""
    outputs: list[str] = list(entry.outputs)
    errors: list[str] = []

    def forward(event: Event) -> None:
        if event.kind == "saved" and not event.data.get("state"):
            outputs.append(str(event.data["path"]))
        elif event.kind == "error":
            errors.append(str(event.data.get("message", "")))
        on_event(event)

    try:
        cfg, _ = config_from_dict(entry.settings)
        code = train(cfg, forward, stop)
    except ConfigError as exc:
        return "failed", str(exc), outputs
    except Exception as exc:  # noqa: BLE001 - one broken run must not end the queue
        return "failed", f"{type(exc).__name__}: {exc}", outputs
    if code != 0:
        return "failed", errors[-1] if errors else f"the run ended with exit code {code}", outputs
    return ("interrupted" if stop.is_set() else "done"), "", list(dict.fromkeys(outputs))


def _train_with_fit_check(cfg, on_event: EventCallback, stop: threading.Event) -> int:
    from trainer.estimate import gpu_fit_warning
    from trainer.run.train import train_with_events

    return train_with_events(cfg, on_event, stop, fit_check=gpu_fit_warning)


def run_queue(
    queue_file: Path,
    on_event: EventCallback,
    stop: threading.Event | None = None,
    train: TrainFn | None = None,
) -> Queue:
    """Run every waiting (and interrupted) entry in order until none is left, Stop is set, or
    the file asks to stop after the current one. Returns the queue as it ends.
    Raises QueueError when another process runs this queue or the file cannot be used."""
    if train is None:
        train = _train_with_fit_check
    stop = stop or threading.Event()
    change_queue(queue_file, _claim)
    try:
        while not stop.is_set():
            entry = change_queue(queue_file, _next)
            if entry is None:
                break
            on_event(
                Event("log", {"message": f"queue: run {entry.id} {entry.name} starts {entry.note}".strip()})
            )
            state, message, outputs = _train_one(entry, on_event, stop, train)

            def finish(queue: Queue, entry=entry, state=state, message=message, outputs=outputs) -> None:
                try:
                    saved = queue.get(entry.id)
                except QueueError:
                    return  # removed while it ran
                saved.state, saved.message, saved.outputs = state, message, outputs
                saved.finished = time.time() if state in ("done", "failed") else None

            change_queue(queue_file, finish)
            on_event(Event("log", {"message": f"queue: run {entry.id} {entry.name} {state}"}))
    finally:

        def release(queue: Queue) -> None:
            if queue.runner and queue.runner.get("pid") == this_runner()["pid"]:
                queue.runner = None

        change_queue(queue_file, release)
    return change_queue(queue_file, lambda q: q)
