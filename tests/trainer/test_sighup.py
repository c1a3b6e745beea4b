"""SIGHUP (the terminal closed) stops `python -m trainer` like Ctrl-C: the run ends after
its step, saves `<name>-stopped-<step>.safetensors` and exits 0, even though the terminal
it was writing its progress bar to is gone."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors import safe_open

fcntl = pytest.importorskip("fcntl", reason="terminals (pty) and SIGHUP are POSIX only")
pty = pytest.importorskip("pty")
termios = pytest.importorskip("termios")
ROOT = Path(__file__).resolve().parents[2]


def demo_preset(path: Path, model: Path, dataset: Path, out: Path) -> Path:
    """The shipped demo preset on these folders, long enough to be stopped part-way."""
    values = json.loads((ROOT / "presets" / "demo.json").read_text(encoding="utf-8"))
    values.update(
        pretrained_model_name_or_path=str(model),
        train_data_dir=str(dataset),
        output_dir=str(out),
        logging_dir=str(out / "logs"),
        max_train_steps=5000,
        save_every_n_epochs=10000,
    )
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


def read_until(fd: int, pattern: bytes, timeout: float) -> bytes:
    """What the terminal showed up to the first match of `pattern` (bounded in time)."""
    seen = b""
    end = time.monotonic() + timeout
    while not re.search(pattern, seen):
        left = end - time.monotonic()
        assert left > 0, f"no {pattern!r} within {timeout} s:\n{seen[-3000:].decode(errors='replace')!r}"
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal (it exited)
                chunk = b""
            assert chunk, f"the trainer ended early:\n{seen[-3000:].decode(errors='replace')}"
            seen += chunk
    return seen


@pytest.mark.slow
def test_sighup_after_the_terminal_closed_saves_the_stopped_lora_and_exits_0(
    tiny_model, demo_dataset, tmp_path
):
    out = tmp_path / "out"
    preset = demo_preset(tmp_path / "p.json", tiny_model("sd15"), demo_dataset, out)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    master, slave = pty.openpty()  # the progress bar goes to a terminal, as in a console
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trainer", "--config", str(preset)],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            cwd=tmp_path,
            env=env,
        )
    finally:
        os.close(slave)
    try:
        read_until(master, rb"\b[1-9]\d*/5000\b", timeout=180)  # a step is done
        os.close(master)  # the terminal window closes: writing to it fails from now on
        master = -1
        proc.send_signal(signal.SIGHUP)
        code = proc.wait(timeout=180)
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0
    stopped = sorted(out.glob("demo_lora-stopped-*.safetensors"))
    assert len(stopped) == 1, sorted(p.name for p in out.iterdir())
    with safe_open(str(stopped[0]), "numpy") as f:
        keys = list(f.keys())
        assert keys and all(f.get_tensor(k).size for k in keys)
    assert not (out / "demo_lora.safetensors").exists()  # it did not run to the end


def test_a_terminal_that_fails_before_the_signal_does_not_end_the_run(monkeypatch):
    """The window can close a moment before its SIGHUP arrives: the progress bar's writes
    fail (EIO) first. The reporter sends the output to /dev/null and lets the run go on, so
    the SIGHUP that follows still stops it and saves (the suite's loaded runs hung here)."""
    import errno

    from trainer.cli_progress import ConsoleReporter
    from trainer.events import Event

    class Closed:
        def write(self, text):
            raise OSError(errno.EIO, "Input/output error")

        def flush(self):
            raise OSError(errno.EIO, "Input/output error")

    lost = []
    reporter = ConsoleReporter(lost_terminal=lambda: lost.append(True))
    plan = {"images": 8, "steps_per_epoch": 4, "epochs": 2, "total_steps": 8}
    reporter(Event("plan", plan))
    monkeypatch.setattr(sys, "stderr", Closed())
    reporter.bar.fp = sys.stderr  # tqdm keeps the stream it was given
    step = {"step": 1, "epoch": 1, "epochs": 2, "avg_loss": 0.5, "lr": 1e-4}
    reporter(Event("step", step))  # no exception reaches the run
    reporter(Event("warning", {"message": "still going"}))
    reporter(Event("stopped", {"path": "x.safetensors"}))
    reporter.close()
    assert lost and reporter.bar is None
