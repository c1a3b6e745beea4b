"""`python -m trainer queue [--file QUEUE.json] add PRESET.json ... | list [--json] | run | remove N | stop`

add: queue every variant of each preset's sweep (checked first: every problem of every
variant at once, exit 2). list: the entries with their state, note and files. run: train
them one after another (Ctrl-C: the current run stops and saves, and is resumed by the
next `queue run`). remove N, up N, down N: drop or move entry N. stop: end the queue
after the current run.
The default file is ~/.lora_gui/queue.json, the one the GUI shows.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from trainer.config import ConfigError
from trainer.queue.store import DEFAULT_QUEUE_FILE, Queue, QueueError, change_queue, read_queue


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m trainer queue", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--file", type=Path, default=DEFAULT_QUEUE_FILE, help=f"the queue file (default {DEFAULT_QUEUE_FILE})"
    )
    sub = p.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="queue a preset (every variant of its sweep)")
    add.add_argument("presets", nargs="+", metavar="PRESET.json")
    add.add_argument("--no-check", action="store_true", help="add without checking the dataset and paths")
    show = sub.add_parser("list", help="show the queue")
    show.add_argument("--json", action="store_true", help="the queue as JSON")
    sub.add_parser("run", help="run the waiting entries one after another")
    for action, what in (("remove", "remove"), ("up", "move up"), ("down", "move down")):
        one = sub.add_parser(action, help=f"{what} entry N (as `list` numbers them)")
        one.add_argument("n", type=int, metavar="N")
    sub.add_parser("stop", help="end a running queue after its current run")
    return p.parse_args(argv)


def describe(queue: Queue) -> str:
    """The queue as a person reads it: one line per entry, its files and message below."""
    if not queue.entries:
        return "The queue is empty."
    lines = []
    for e in queue.entries:
        note = f" ({e.note})" if e.note else ""
        if e.state == "running" and not queue.runner_alive():
            note += " (its process is gone: `queue run` resumes it)"
        lines.append(f"{e.id:>3}  {e.state:<11} {e.name}{note}")
        lines += [f"       {path}" for path in e.outputs]
        if e.message:
            lines += [f"       {line}" for line in e.message.splitlines()]
    if queue.stop_after_current:
        lines.append("(stops after the current run)")
    return "\n".join(lines)


def change(path: Path, action: str, entry_id: int = 0) -> None:
    """ "remove" / "up" / "down" entry `entry_id`, or "stop_after_current". Raises QueueError."""

    def apply(queue: Queue) -> None:
        if action == "stop_after_current":
            queue.stop_after_current = True
            return
        entry = queue.get(entry_id)
        i = queue.entries.index(entry)
        if action == "remove":
            if entry.state == "running" and queue.runner_alive():
                raise QueueError(
                    f"entry {entry_id} is running; stop the queue first (`queue stop` or Ctrl-C)"
                )
            queue.entries.remove(entry)
        elif action in ("up", "down"):
            j = max(0, i - 1) if action == "up" else min(len(queue.entries) - 1, i + 1)
            queue.entries[i], queue.entries[j] = queue.entries[j], queue.entries[i]
        else:
            raise QueueError(f"unknown queue action {action!r}")

    change_queue(path, apply)


def _run(path: Path) -> int:
    from trainer.cli_progress import ConsoleReporter
    from trainer.queue.runner import run_queue

    reporter = ConsoleReporter()
    stop = threading.Event()

    def on_signal(signum, frame):  # first Ctrl-C: the current run stops and saves
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nStopping the queue after the current step (Ctrl-C again to abort)...", file=sys.stderr)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    try:
        queue = run_queue(path, reporter, stop)
    except KeyboardInterrupt:
        print("\nAborted; `queue run` resumes the interrupted run.", file=sys.stderr)
        return 130
    finally:
        reporter.close()
    print(describe(queue))
    return 1 if any(e.state == "failed" for e in queue.entries) else 0


def main(argv: list[str]) -> int:
    args = _args(argv)
    path: Path = args.file.expanduser()
    try:
        if args.action == "add":
            from trainer.queue.add import add_preset

            added = []
            for preset in args.presets:
                added += add_preset(path, preset, check=not args.no_check)
            print(f"Added {len(added)} run(s) to {path}: " + ", ".join(f"{e.id} {e.name}" for e in added))
        elif args.action == "list":
            queue = read_queue(path)
            print(json.dumps(queue.to_json(), indent=2, ensure_ascii=False) if args.json else describe(queue))
        elif args.action in ("remove", "up", "down"):
            change(path, args.action, args.n)
            print(describe(read_queue(path)))
        elif args.action == "stop":
            change(path, "stop_after_current")
            print("The queue stops after its current run.")
        else:
            return _run(path)
    except ConfigError as exc:
        shown = "\n".join(f"- {p}" for p in exc.problems)
        print(f"error: fix these settings first:\n{shown}", file=sys.stderr)
        return 2
    except QueueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
