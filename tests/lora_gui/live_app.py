"""A live app for the tests that need one: `python gui.py` in a subprocess on a free
127.0.0.1 port, a preset for it, and headless Chromium (skipped, saying how to get it,
where it is missing). Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The browser tests drive Debian's chromium; LORA_STUDIO_CHROMIUM names another one.
CHROMIUM = os.environ.get("LORA_STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_MISSING = "chromium not found: apt-get install chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_chromium() -> None:
    """Skip the calling test (or fixture) with how to install chromium when it is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(CHROMIUM_MISSING)


def launch_chromium(playwright: Any) -> Any:
    need_chromium()
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def write_demo_preset(path: Path, **over: Any) -> Path:
    """The shipped demo preset with `over` applied, as a file."""
    values = json.loads((ROOT / "presets" / "demo.json").read_text(encoding="utf-8"))
    values.update(over)
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


@dataclass
class LiveApp:
    proc: subprocess.Popen
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]

    def close(self) -> None:
        """End the app if it still runs (SIGTERM, then SIGKILL after 20 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_app(cwd: Path, *args: str, stdout: Any = None, timeout: float = 120) -> LiveApp:
    """`python gui.py --port P --presets-dir cwd/user *args` in `cwd`, once it answers.

    Its output goes to cwd/server.log unless `stdout` (a file descriptor) is given."""
    port = free_port()
    log = cwd / "server.log"
    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, str(ROOT / "gui.py"), "--port", str(port), "--presets-dir", str(cwd / "user")]
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [*cmd, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out if stdout is None else stdout,
            stderr=subprocess.STDOUT,
        )
    app = LiveApp(proc, f"http://127.0.0.1:{port}/", log)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"gui.py exited {proc.returncode}:\n{app.output()}")
        try:
            with urllib.request.urlopen(app.url, timeout=2) as r:
                if r.status == 200:
                    return app
        except OSError:
            time.sleep(0.3)
    app.close()
    raise AssertionError(f"gui.py did not answer in {timeout} s:\n{app.output()}")
