"""One run per output: two runs into the same output_dir and output_name would overwrite
each other's files, so a run holds `<output_dir>/.<output_name>.lock` while it trains.

The lock file is created with O_EXCL (of two runs starting at once, one wins) and holds the
run's PID, host and start time, so the run refused can name the one that holds it. The lock
of a run that died without releasing it (SIGKILL, a power cut: its PID is gone from this
host, or now belongs to a process started later) is stale and replaced. With several
processes only the main one (rank 0) takes it. Released when the run ends: done, stopped or
failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from trainer.config import TrainingConfig
from trainer.files import pid_alive

_UNWRITTEN_GRACE_S = 30.0  # a lock file without its contents yet: being written, unless older


class OutputLocked(Exception):
    """Another run holds the output; the message names it and what to do."""


def lock_path(cfg: TrainingConfig) -> Path:
    return Path(cfg.output_dir) / f".{cfg.output_name}.lock"


def _process_start(pid: int) -> str | None:
    """When `pid` started (Linux: clock ticks since boot), to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22, counted after the command name


def _mine() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "process_start": _process_start(os.getpid()),
    }


def _read(path: Path) -> dict | None:
    """The holder recorded in a lock file, or None (missing, or not written yet)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None


def _stale(path: Path, info: dict | None) -> bool:
    """Whether the lock's run is gone: a dead (or reused) PID on this host, or a file left
    without contents long ago. A lock from another host is never judged from here."""
    if info is None:
        try:
            return time.time() - path.stat().st_mtime > _UNWRITTEN_GRACE_S
        except OSError:
            return True  # gone meanwhile
    if info.get("host") != socket.gethostname():
        return False
    pid = info["pid"]
    if not pid_alive(pid):
        return True
    recorded, now = info.get("process_start"), _process_start(pid)
    return bool(recorded and now and recorded != now)


def holder_problem(cfg: TrainingConfig) -> str | None:
    """Why a run into this output would be refused now (a live run holds its lock), or None."""
    if not cfg.output_dir.strip():
        return None
    path = lock_path(cfg)
    if not path.exists():
        return None
    info = _read(path)
    if _stale(path, info):
        return None
    if info is None:
        return f"another run is starting to write {cfg.output_name} in {cfg.output_dir} now ({path})"
    where = "" if info.get("host") == socket.gethostname() else f" on {info.get('host')}"
    return (
        f"another run is writing {cfg.output_name} in {cfg.output_dir}: PID {info['pid']}{where}, started "
        f"{info.get('started', '?')}. Wait for it to end or choose another output_name; if that run is "
        f"no longer running, delete {path}"
    )


def _take_over_stale(path: Path, seen: dict | None) -> None:
    """Move a stale lock out of the way, unless another run replaced it meanwhile."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    if _read(aside) != seen:  # a live run's lock taken by mistake: give it back
        with contextlib.suppress(OSError):
            os.link(aside, path)
    with contextlib.suppress(OSError):
        aside.unlink()


def acquire(cfg: TrainingConfig) -> Path:
    """Take the output's lock; raises OutputLocked naming the run that holds it."""
    path = lock_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = _read(path)
            if not _stale(path, info):
                break
            _take_over_stale(path, info)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(_mine()))
        return path
    raise OutputLocked(holder_problem(cfg) or f"{path} is held by another run")


def release(path: Path) -> None:
    """Remove the lock if it is still this process's."""
    info = _read(path)
    if info and info.get("pid") == os.getpid() and info.get("host") == socket.gethostname():
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def output_lock(cfg: TrainingConfig, is_main: bool) -> Iterator[None]:
    """Hold the output's lock for the run (main process only); raises OutputLocked."""
    if not is_main or not cfg.output_dir.strip():
        yield
        return
    path = acquire(cfg)
    try:
        yield
    finally:
        release(path)
