"""Start `python gui.py` in a scratch folder for browser tests, and headless Chromium.

The same way tests/lora_gui/test_browser.py does it, for the test files that need their
own flags or environment (a fake Hugging Face endpoint, a models folder, HOME).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
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


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not answers(url):
        if proc.poll() is not None:
            raise AssertionError(f"gui.py exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > end:
            raise AssertionError(f"gui.py did not answer in {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def prepare_demo(work: Path, tiny_model: Path, demo_dataset: Path) -> None:
    shutil.copytree(tiny_model, work / "demo" / "model")
    shutil.copytree(demo_dataset, work / "demo" / "dataset")


@contextmanager
def running_gui(work: Path, args: list[str] = (), env: dict[str, str] | None = None) -> Iterator[tuple]:
    """(url, process) of gui.py serving from `work` on a free localhost port; on exit it is
    stopped with Ctrl+C (SIGINT), as a person stops it."""
    port = free_port()
    log = work / f"server-{port}.log"
    full_env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        **(env or {}),
    }
    cmd = [
        sys.executable,
        str(ROOT / "gui.py"),
        "--port",
        str(port),
        "--presets-dir",
        str(work / "user"),
        *args,
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=work, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(url, proc, log)
        yield url, proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
