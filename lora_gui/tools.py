"""What the Tools row does: the config file at a path, the training command, TensorBoard.

- A config file is our preset JSON, written through `trainer.presets.save_preset` (never
  a secret) at a path the user picks, and read back with the preset loader.
- "Print training command" writes the preset the command needs and shows the
  `python -m trainer --config <file>` line (and the `accelerate launch` argument list
  from `trainer.api.accelerate_command` when num_processes > 1). Nothing is run.
- TensorBoard runs once per app, as an argument list (never a shell) on 127.0.0.1 and a
  free port; a second press reuses it; it is stopped when the app exits.
"""

from __future__ import annotations

import atexit
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lora_gui.values import problems_markdown, validate_form
from trainer.api import accelerate_command
from trainer.presets import save_preset


class ToolError(Exception):
    """A tool that cannot do its job; `key` is the i18n message, `extra` its fields."""

    def __init__(self, key: str, **extra: Any):
        super().__init__(key)
        self.key = key
        self.extra = extra


def default_config_path(values: Mapping[str, Any]) -> str:
    """<output_dir>/<output_name>.json, or "" when there is no output folder."""
    out = str(values.get("output_dir") or "").strip()
    if not out:
        return ""
    name = str(values.get("output_name") or "").strip() or "config"
    return str(Path(out).expanduser() / f"{name}.json")


def config_path(text: str) -> Path:
    """The absolute .json path the user typed (~ expanded); raises ToolError."""
    raw = str(text or "").strip()
    if not raw:
        raise ToolError("tools.no_path")
    path = Path(raw).expanduser()
    if path.suffix.lower() != ".json":
        raise ToolError("tools.not_json", path=str(path))
    return path if path.is_absolute() else Path.cwd() / path


def save_config(values: Mapping[str, Any], path: Path, lang: str) -> Path:
    """Write the form as a preset at `path` (secrets never written); raises ToolError
    listing the form's problems when it does not validate."""
    cfg, problems = validate_form(values)
    if cfg is None:
        raise ToolError("tools.invalid", problems=problems_markdown(problems, lang))
    if path.is_dir():
        raise ToolError("tools.not_json", path=str(path))
    try:
        return save_preset(cfg, path)
    except OSError as exc:
        raise ToolError("tools.not_written", path=str(path), reason=exc.strerror or str(exc)) from None


def training_command(values: Mapping[str, Any], path: Path, lang: str, python: str = sys.executable) -> str:
    """Save the preset at `path` and return the command lines that train with it."""
    saved = save_config(values, path, lang)
    cfg, _ = validate_form(values)
    lines = [shlex.join([python, "-m", "trainer", "--config", str(saved)])]
    if cfg is not None and int(cfg.num_processes or 1) > 1:
        lines.append(shlex.join(accelerate_command(saved, cfg, python=python, events=False)))
    return "\n".join(lines)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class TensorBoard:
    """One TensorBoard of the app: started on the first press, reused, stopped at exit."""

    def __init__(self, popen: Callable[..., Any] = subprocess.Popen, python: str = sys.executable):
        self._popen = popen
        self._python = python
        self._lock = threading.Lock()
        self._proc: Any = None
        self.logdir = ""
        self.url = ""
        atexit.register(self.stop)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, logdir: str) -> tuple[str, bool]:
        """(url, started now) for `logdir`; one for another folder replaces the old one."""
        folder = str(Path(logdir).expanduser().resolve())
        with self._lock:
            if self.running and folder == self.logdir:
                return self.url, False
            self._stop_locked()
            Path(folder).mkdir(parents=True, exist_ok=True)
            port = free_port()
            cmd = [self._python, "-m", "tensorboard.main", "--logdir", folder]
            cmd += ["--host", "127.0.0.1", "--port", str(port)]
            self._proc = self._popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.logdir, self.url = folder, f"http://127.0.0.1:{port}/"
            return self.url, True

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
