"""The runner: events fold into a snapshot; several processes run under accelerate."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from lora_gui.panel import format_duration, format_speed, loss_frame, progress_markdown
from lora_gui.runner import Runner, RunState, accelerate_command
from trainer.config import validate_values
from trainer.events import Event

from .gui_fakes import FakeApi, until


class FakeProc:
    """A finished child whose stdout is given lines."""

    def __init__(self, lines: list[str], rc: int = 0):
        self.stdout = iter(lines)
        self.rc = rc
        self.pid = None

    def wait(self) -> int:
        return self.rc


def child_lines(out: Path) -> list[str]:
    path = str(out / "mylora.safetensors")
    events = [
        Event("started", {"output_dir": str(out), "output_name": "mylora", "device": "cuda"}),
        Event(
            "step",
            {
                "step": 1,
                "total_steps": 2,
                "epoch": 1,
                "epochs": 1,
                "loss": 0.2,
                "avg_loss": 0.2,
                "lr": 1e-4,
                "it_per_s": 3.0,
                "eta_s": 1,
            },
        ),
        Event(
            "step",
            {
                "step": 2,
                "total_steps": 2,
                "epoch": 1,
                "epochs": 1,
                "loss": 0.1,
                "avg_loss": 0.15,
                "lr": 1e-4,
                "it_per_s": 3.0,
                "eta_s": 0,
            },
        ),
        Event("saved", {"path": path, "epoch": 1, "step": 2, "final": True}),
        Event("finished", {"path": path, "steps": 2, "seconds": 1.0}),
    ]
    return (
        ["The following values were not passed to `accelerate launch`...\n"]
        + [e.to_json() + "\n" for e in events]
        + ["{not json\n"]
    )


def test_several_processes_run_accelerate_with_an_argument_list(values, tmp_path):
    values["huggingface_token"] = "hf_secret"
    cfg = validate_values(values)
    seen = {}

    def popen(cmd, **kwargs):
        seen["cmd"], seen["kwargs"] = cmd, kwargs
        seen["config"] = json.loads(Path(cmd[cmd.index("--config") + 1]).read_text())
        return FakeProc(child_lines(tmp_path))

    runner = Runner(FakeApi(), popen=popen)
    assert runner.start(cfg, num_processes=2)
    assert runner.wait(5)
    cmd = seen["cmd"]
    assert isinstance(cmd, list) and "shell" not in seen["kwargs"]
    assert cmd == accelerate_command(
        cmd[cmd.index("--config") + 1], cfg.model_copy(update={"num_processes": 2})
    )
    assert cmd[:6] == [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
    ]
    assert cmd[cmd.index("--events") + 1] == "jsonl" and "-m" in cmd[4:]
    assert "huggingface_token" not in seen["config"] or not seen["config"]["huggingface_token"]
    assert seen["kwargs"]["env"]["HF_TOKEN"] == "hf_secret"
    assert not Path(cmd[cmd.index("--config") + 1]).exists()  # the temp config is removed
    s = runner.snapshot()
    assert s.status == "finished" and s.step == 2 and len(s.losses) == 2
    assert s.saved == [str(tmp_path / "mylora.safetensors")]
    assert any("not passed to `accelerate launch`" in line for line in s.logs)
    assert any("{not json" in line for line in s.logs)


def test_a_child_that_dies_silently_is_reported(values):
    runner = Runner(FakeApi(), popen=lambda cmd, **kw: FakeProc(["Killed\n"], rc=-9))
    runner.start(validate_values(values), num_processes=2)
    assert runner.wait(5)
    s = runner.snapshot()
    assert s.status == "failed" and "exit code -9" in s.error["message"]


def test_stop_interrupts_the_child_process(values):
    interrupted = []
    release = threading.Event()

    class SlowProc(FakeProc):
        def __init__(self):
            super().__init__([])
            self.stdout = self._lines()

        def _lines(self):
            yield Event("step", {"step": 1, "total_steps": 9, "epoch": 1, "epochs": 1}).to_json()
            release.wait(5)
            yield Event("stopped", {"path": "x.safetensors", "step": 1, "reason": "Stop"}).to_json()

    def interrupt(proc):
        interrupted.append(proc)
        release.set()

    runner = Runner(FakeApi(), popen=lambda cmd, **kw: SlowProc(), interrupt=interrupt)
    runner.start(validate_values(values), num_processes=2)
    until(lambda: runner.snapshot().step == 1)  # the first step is shown before Stop
    assert runner.stop()
    assert runner.wait(5)
    assert len(interrupted) == 1 and runner.snapshot().status == "stopped"


def test_snapshot_is_a_copy(values):
    runner = Runner(FakeApi())
    runner.start(validate_values(values))
    runner.wait(5)
    snap = runner.snapshot()
    snap.losses.clear()
    snap.saved.append("x")
    assert len(runner.snapshot().losses) == 3 and "x" not in runner.snapshot().saved


def test_progress_line_and_formats():
    s = RunState(status="running", step=50, total_steps=200, epoch=2, epochs=4, it_per_s=0.5, eta_s=3725)
    text = progress_markdown(s, "en")
    assert "**50 / 200** (25 %)" in text and "epoch 2 / 4" in text
    assert "2.00 s/it" in text and "about 1h 02m 05s left" in text
    assert format_duration(65) == "1m 05s" and format_speed(4) == "4.00 it/s"


def test_loss_frame_is_numeric_and_thinned():
    s = RunState(losses=[(i, 1.0 / i, 0.5) for i in range(1, 5001)])
    frame = loss_frame(s)
    assert str(frame["step"].dtype) == "int64" and str(frame["loss"].dtype) == "float64"
    assert len(frame) <= 2 * 602 and frame["step"].max() == 5000
    assert str(loss_frame(RunState())["loss"].dtype) == "float64"
