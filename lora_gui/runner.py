"""One training run at a time, followed through the trainer's events.

The GUI's handlers never wait for training: `Runner.start` hands the config to a worker
thread that calls `api.run_training(cfg, on_event, stop)` (or, for several processes,
starts `accelerate launch ... -m trainer --events jsonl` and reads one event per line),
and the run panel polls `Runner.snapshot()`. Events land in a lock-protected state, so
the worker and any number of browser tabs can touch it at once. Stop sets the
`threading.Event` the trainer checks after each step, so the run ends with a saved file.
The log keeps what each event said as a key of the translation table and its data
(`LogLine`), so every browser tab reads it in its own language.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from lora_gui.run_state import LogLine, RunState, fold_event, said
from trainer.api import Event, accelerate_command
from trainer.config import TrainingConfig
from trainer.presets import save_preset

log = logging.getLogger(__name__)


class TrainerApi(Protocol):
    """The slice of `trainer.api` a run needs (tests pass a fake)."""

    def run_training(
        self, cfg: TrainingConfig, on_event: Callable[[Event], None], stop: threading.Event | None = None
    ) -> int: ...


class Runner:
    """Holds one run: its worker, its stop flag and the state its events build."""

    def __init__(
        self,
        api: TrainerApi,
        *,
        max_logs: int = 300,
        popen: Callable[..., Any] = subprocess.Popen,
        python: str = sys.executable,
        interrupt: Callable[[Any], None] | None = None,
    ):
        self._api = api
        self._popen = popen
        self._interrupt = interrupt or interrupt_process
        self._python = python
        self._lock = threading.Lock()
        self._state = RunState()
        self._logs: deque[LogLine] = deque(maxlen=max_logs)
        self._quiet: set[str] = set()  # engine warnings said another way (the plan's, the model's)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: Any = None

    # ---- what handlers call -----------------------------------------------------------
    def start(
        self, cfg: TrainingConfig, num_processes: int | None = None, quiet: tuple[str, ...] = ()
    ) -> bool:
        """Begin a run in the background; False (and nothing starts) while one is active.

        One process trains in a worker thread; `num_processes` (default: the config's) of
        2 or more run `accelerate launch` in a child process. Warnings whose text is in
        `quiet` are left out of the log (the page said them already, in its language)."""
        if num_processes is None:
            num_processes = cfg.num_processes
        elif num_processes != cfg.num_processes:
            cfg = cfg.model_copy(update={"num_processes": num_processes})
        with self._lock:
            if self._busy():
                return False
            self._state = RunState(
                status="running",
                run_id=self._state.run_id + 1,
                version=self._state.version + 1,
                output_dir=cfg.output_dir,
                save_state=bool(cfg.save_state or cfg.save_state_on_train_end),
            )
            self._logs.clear()
            self._quiet = set(quiet)
            self._stop = threading.Event()
            target = self._run_in_process if num_processes <= 1 else self._run_subprocess
            args = (cfg,) if num_processes <= 1 else (cfg, num_processes)
            self._thread = threading.Thread(target=target, args=args, daemon=True, name="lora-gui-training")
            self._thread.start()
        return True

    def stop(self) -> bool:
        """Ask the run to end after the current step (a file is still saved)."""
        with self._lock:
            if not self._state.active:
                return False
            self._stop.set()
            self._state.status = "stopping"
            self._bump()
            proc = self._proc
        if proc is not None:
            self._interrupt(proc)
        return True

    def clear(self) -> bool:
        """Forget a finished run (its messages, curve and files) before the next Start;
        False while one is active."""
        with self._lock:
            if self._busy():
                return False
            self._state = RunState(run_id=self._state.run_id, version=self._state.version + 1)
            self._logs.clear()
            return True

    def snapshot(self) -> RunState:
        """A consistent copy of the state, safe to read while training goes on."""
        with self._lock:
            s = self._state
            return RunState(
                **{
                    **s.__dict__,
                    "losses": list(s.losses),
                    "logs": [line.text("en") for line in self._logs],
                    "lines": list(self._logs),
                    "saved": list(s.saved),
                    "samples": [dict(x) for x in s.samples],
                    "error": dict(s.error) if s.error else None,
                }
            )

    @property
    def running(self) -> bool:
        """True from Start until the worker has returned (it may still be freeing memory
        after its last event), so a new run never overlaps the old one."""
        with self._lock:
            return self._busy()

    def _busy(self) -> bool:
        return self._state.active or (self._thread is not None and self._thread.is_alive())

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker ends (tests and shutdown); True if it did."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # ---- events -----------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """Fold one trainer event into the state (called from the worker thread)."""
        with self._lock:
            fold_event(self._state, event, self._log, self._quiet)
            self._bump()

    def _log(self, key: str, **data: Any) -> None:
        self._logs.append(LogLine(time.strftime("%H:%M:%S"), key, data))

    def _bump(self) -> None:
        self._state.version += 1

    def _end(self, rc: int | None, what: str) -> None:
        """After the worker returns: a run that said nothing final still gets a status.

        `what`: "run.what.training" or "run.what.process" (who ended)."""
        with self._lock:
            s = self._state
            if s.status == "stopping":
                s.status = "stopped"
            elif s.status == "running":
                if rc == 0:
                    s.status = "finished"
                else:
                    s.status = "failed"
                    s.error = s.error or said("run.exit_code", "run.exit_hint", what=what, rc=rc)
            self._bump()

    # ---- the two ways to run -------------------------------------------------------------
    def _run_in_process(self, cfg: TrainingConfig) -> None:
        rc: int | None = None
        try:
            rc = self._api.run_training(cfg, self.on_event, self._stop)
        except Exception as exc:  # the trainer promises not to raise; never show a traceback
            log.exception("the trainer raised")
            error = f"{type(exc).__name__}: {exc}"
            self.on_event(Event("error", said("run.crashed", "run.crashed_hint", error=error)))
            rc = 1
        finally:
            self._end(rc, "run.what.training")

    def _run_subprocess(self, cfg: TrainingConfig, num_processes: int) -> None:
        fd, config_path = tempfile.mkstemp(prefix="lora_gui_run_", suffix=".json")
        os.close(fd)
        rc: int | None = None
        try:
            save_preset(cfg, config_path)  # without secrets; the token goes by environment
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
            if cfg.huggingface_token:
                env["HF_TOKEN"] = cfg.huggingface_token
            kwargs: dict[str, Any] = {
                "stdout": subprocess.PIPE,
                "stderr": subprocess.STDOUT,
                "text": True,
                "encoding": "utf-8",
                "errors": "replace",
                "bufsize": 1,
                "env": env,
            }
            if os.name == "nt":
                kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
            else:
                kwargs["start_new_session"] = True
            cmd = accelerate_command(config_path, cfg, self._python)
            with self._lock:
                self._log("log.running", command=" ".join(cmd))
                self._proc = self._popen(cmd, **kwargs)
                proc = self._proc
            if self._stop.is_set():
                self._interrupt(proc)
            for line in proc.stdout:
                self._follow_line(line.rstrip("\r\n"))
            rc = proc.wait()
        except OSError as exc:
            error = str(exc)
            self.on_event(Event("error", said("run.no_accelerate", "run.no_accelerate_hint", error=error)))
            rc = 1
        finally:
            with self._lock:
                self._proc = None
            Path(config_path).unlink(missing_ok=True)
            self._end(rc, "run.what.process")

    def _follow_line(self, line: str) -> None:
        """One stdout line of the child: an event if it is one, else a log line."""
        if line.startswith("{"):
            try:
                event = Event.from_json(line)
            except (ValueError, KeyError, TypeError, AttributeError):
                event = None
            if event is not None:
                self.on_event(event)
                return
        if line.strip():
            with self._lock:
                self._log("log.output", text=line)
                self._bump()


def interrupt_process(proc: Any) -> None:
    """Ask a child training process to stop like Ctrl+C would (it saves, then exits)."""
    try:
        if os.name == "nt":
            proc.send_signal(signal.CTRL_BREAK_EVENT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
    except (OSError, ProcessLookupError, AttributeError):
        log.warning("could not interrupt the training process %s", getattr(proc, "pid", "?"))
