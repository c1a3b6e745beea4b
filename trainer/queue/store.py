"""The queue file: a JSON list of runs on disk, survives a restart of the app or the machine.

    {"format": 1, "next_id": 4, "stop_after_current": false, "runner": {"pid": .., "host": ..},
     "entries": [{"id": 1, "name": "mychar-network_alpha50", "state": "done", "settings": {..},
                  "outputs": [".../mychar-network_alpha50.safetensors"], "message": "", ..}]}

Every change reads the file, changes it and writes it back atomically (trainer.files)
under a lock file beside it (POSIX), so `queue add` while `queue run` works. Entry states:
waiting -> running -> done | failed (with the message) | interrupted (stopped, or the
process died; the next `queue run` resumes it).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from trainer.files import pid_alive, write_file_atomic

QUEUE_FORMAT = 1
STATES = ("waiting", "running", "done", "failed", "interrupted")
# The app's settings folder (the GUI keeps its presets and models list there too).
APP_DIR = Path.home() / ".lora_gui"
DEFAULT_QUEUE_FILE = APP_DIR / "queue.json"
T = TypeVar("T")


class QueueError(Exception):
    """The queue file cannot be used as asked; the message says what to do."""


@dataclass
class Entry:
    """One run of the queue: its settings (a preset dict, no secrets) and what became of it."""

    id: int
    name: str  # the output name (a sweep variant's own)
    settings: dict[str, Any]
    preset: str = ""  # the preset file it was added from
    state: str = "waiting"
    message: str = ""  # why it failed
    note: str = ""  # resumed from ... / restarted ...
    outputs: list[str] = field(default_factory=list)  # the LoRA files it saved
    added: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None

    @staticmethod
    def from_json(obj: dict) -> Entry:
        known = {k: v for k, v in obj.items() if k in Entry.__dataclass_fields__}
        return Entry(**known)


@dataclass
class Queue:
    entries: list[Entry] = field(default_factory=list)
    next_id: int = 1
    stop_after_current: bool = False
    runner: dict | None = None  # the process running the queue now

    def add(self, name: str, settings: dict[str, Any], preset: str = "") -> Entry:
        entry = Entry(self.next_id, name, settings, preset)
        self.next_id += 1
        self.entries.append(entry)
        return entry

    def get(self, entry_id: int) -> Entry:
        for entry in self.entries:
            if entry.id == entry_id:
                return entry
        raise QueueError(f"the queue has no entry {entry_id} (`queue list` shows the numbers)")

    def runner_alive(self) -> bool:
        """Whether another process on this machine runs this queue now."""
        r = self.runner
        if not r or r.get("host") != socket.gethostname():
            return bool(r)  # another machine's runner is never judged from here
        return r.get("pid") != os.getpid() and pid_alive(int(r.get("pid", 0)))

    def to_json(self) -> dict:
        return {
            "format": QUEUE_FORMAT,
            "next_id": self.next_id,
            "stop_after_current": self.stop_after_current,
            "runner": self.runner,
            "entries": [asdict(e) for e in self.entries],
        }


def read_queue(path: Path) -> Queue:
    """The queue in `path` (an empty queue when the file does not exist yet)."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Queue()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise QueueError(
            f"{path} is not a readable queue file ({exc}); move it aside or pick --file"
        ) from None
    if (
        not isinstance(obj, dict)
        or obj.get("format") != QUEUE_FORMAT
        or not isinstance(obj.get("entries"), list)
    ):
        raise QueueError(
            f"{path} is not a queue file of this trainer (format {QUEUE_FORMAT}); pick another --file"
        )
    try:
        entries = [Entry.from_json(e) for e in obj["entries"]]
    except TypeError as exc:
        raise QueueError(
            f"{path}: an entry is incomplete ({exc}); remove it or pick another --file"
        ) from None
    return Queue(
        entries,
        int(obj.get("next_id", max((e.id for e in entries), default=0) + 1)),
        bool(obj.get("stop_after_current", False)),
        obj.get("runner"),
    )


def write_queue(path: Path, queue: Queue) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(queue.to_json(), indent=2, ensure_ascii=False) + "\n"
    write_file_atomic(path, text.encode("utf-8"))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the queue's lock file (POSIX; elsewhere the atomic write alone)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def change_queue(path: Path, change: Callable[[Queue], T]) -> T:
    """Read the queue, apply `change` (which may raise QueueError: nothing is written), write it."""
    path = Path(path)
    with _locked(path):
        queue = read_queue(path)
        result = change(queue)
        try:
            write_queue(path, queue)
        except OSError as exc:
            raise QueueError(f"cannot write the queue file {path} ({exc.strerror or exc})") from None
        return result


def this_runner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
