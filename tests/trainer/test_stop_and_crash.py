"""Whatever ends a run, the user finds complete files and a message saying what happened.

SIGTERM to the CLI saves and exits 0; SIGKILL at random moments (saves included) never
leaves a damaged file; a NaN loss, running out of memory or a full disk stop the run
with a message, never overwriting a good file with a bad one.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tests.helpers import ROOT, make_toy_dataset, toy_settings
from trainer.config import config_from_dict
from trainer.files import clean_stale_temps
from trainer.network.lora_file import SaveError, save_lora
from trainer.run import guards
from trainer.run.output_lock import holder_problem
from trainer.run.state import load_training
from trainer.run.train import Run, train_with_events


def settings(model: Path, data: Path, out: Path, **over) -> dict:
    """2 images of 64 px, batch 2: one step per epoch, a save (and state) after each."""
    values = {
        "learning_rate": 1e-3,
        "unet_lr": 1e-4,  # the learning rates' defaults
        "text_encoder_lr": 1e-4,
        "save_every_n_epochs": 1,
        "network_dim": 2,
        "network_alpha": 2,
        "save_state": True,
        "seed": 3,
    }
    return toy_settings(model, data, out, **{**values, **over})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_toy_dataset(tmp_path_factory.mktemp("stop") / "data", n=2, size=64)


def run(values: dict) -> tuple[int, list]:
    cfg, _ = config_from_dict(values)
    events: list = []
    return train_with_events(cfg, events.append), events


def error_of(events: list) -> dict:
    errors = [e.data for e in events if e.kind == "error"]
    assert len(errors) == 1, [e.kind for e in events]
    return errors[0]


def assert_complete(path: Path) -> None:
    """The file opens, every tensor reads, and the saved data hash matches."""
    with safe_open(str(path), "pt") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open is not iterable
            f.get_tensor(key)
        meta = f.metadata() or {}
    if "sshs_model_hash" in meta:
        import hashlib

        blob = path.read_bytes()
        header = int.from_bytes(blob[:8], "little")
        assert hashlib.sha256(blob[8 + header :]).hexdigest() == meta["sshs_model_hash"], path


def visible(out: Path, pattern: str) -> list[Path]:
    return [
        p for p in out.rglob(pattern) if not any(part.startswith(".") for part in p.relative_to(out).parts)
    ]


def write_preset(path: Path, values: dict) -> Path:
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


# `python -m trainer` runs, each in a process of its own, forked from a parent that has
# imported the trainer once: a run then costs a model load and a few steps, not the
# imports (many seconds each on a small machine).
FORK_SERVER = r"""
import json, os, sys
import trainer.__main__ as cli
import accelerate, trainer.models.load, trainer.run.train  # noqa: F401,E401 - imports before any fork
for line in sys.stdin:
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        print(json.dumps({"kind": "child", "pid": os.getpid()}), flush=True)
        code = cli.main(["--config", line.strip(), "--events", "jsonl"])
        sys.stdout.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    print("\n" + json.dumps({"kind": "exited", "code": code}), flush=True)  # after any cut line
"""


class TrainerProcesses:
    """Start CLI training processes (`start`) and read their events (`events`)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER],
            cwd=ROOT,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.watchdog = threading.Timer(900, self.proc.kill)
        self.watchdog.start()
        self.events = self._read()

    def _read(self):
        for line in self.proc.stdout:
            try:
                yield json.loads(line)
            except ValueError:  # not an event, or cut short by a kill
                continue

    def start(self, preset: Path) -> int:
        """Run `python -m trainer --config preset --events jsonl`; returns its pid."""
        self.proc.stdin.write(f"{preset}\n")
        self.proc.stdin.flush()
        event = next(self.events)
        assert event["kind"] == "child", event
        return event["pid"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        self.watchdog.cancel()


@pytest.fixture(scope="module")
def processes():
    server = TrainerProcesses()
    yield server
    server.close()


def test_sigterm_saves_the_lora_and_state_and_exits_0(tiny_model, data, tmp_path, processes):
    out = tmp_path / "out"
    preset = write_preset(
        tmp_path / "p.json", settings(tiny_model("sd15"), data, out, epoch=100, save_every_n_epochs=100)
    )
    pid = processes.start(preset)
    kinds = []
    for event in processes.events:
        if event["kind"] == "exited":
            code = event["code"]
            break
        kinds.append(event["kind"])
        if event["kind"] == "step" and kinds.count("step") == 1:
            os.kill(pid, signal.SIGTERM)  # like Ctrl-C, or a process manager stopping it
    assert code == 0
    stopped = [p.name for p in out.glob("toy-stopped-*.safetensors")]
    assert len(stopped) == 1, sorted(p.name for p in out.iterdir())
    assert_complete(out / stopped[0])
    load_training(out / stopped[0].replace(".safetensors", "-state"))
    assert kinds[-1] == "stopped" and "error" not in kinds


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_damaged_file(tiny_model, data, tmp_path, processes):
    out = tmp_path / "out"
    preset = write_preset(tmp_path / "p.json", settings(tiny_model("sd15"), data, out, epoch=500))
    rng = random.Random(0)
    kills, started = 0, time.monotonic()
    while kills < 6 and (kills < 2 or time.monotonic() - started < 45):
        pid = processes.start(preset)
        # An epoch's end starts a LoRA save, a "saved" event starts the state's; every
        # third round waits a random time from there.
        trigger = ("epoch", "saved", "saved")[kills % 3]
        delay = rng.uniform(0.0, 0.8 if kills % 3 == 2 else 0.05)
        for event in processes.events:
            assert event["kind"] not in ("error", "exited"), event
            if event["kind"] == trigger:
                break
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        while next(processes.events)["kind"] != "exited":
            pass
        kills += 1
        for path in visible(out, "*.safetensors"):
            assert_complete(path)
        for folder in visible(out, "*-state"):
            load_training(folder)  # raises if any part is missing or damaged
    assert kills >= 2 and visible(out, "toy-*.safetensors")
    clean_stale_temps(out)  # what the next run does first
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".toy.lock"]
    cfg, _ = config_from_dict(json.loads(preset.read_text(encoding="utf-8")))
    assert holder_problem(cfg) is None  # the killed run's lock: stale, the next run replaces it


def test_nan_loss_stops_at_once_and_saves_nothing_after_it(tiny_model, data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    save_file({"x": torch.ones(2)}, str(out / "toy.safetensors"))  # a good file from before
    before = (out / "toy.safetensors").read_bytes()
    original = Run.step_loss

    def poisoned(self, batch, generator):
        loss = original(self, batch, generator)
        return loss * float("nan") if self.keeper.position.step + 1 >= 2 else loss

    monkeypatch.setattr(Run, "step_loss", poisoned)
    # as on a GPU: the loss is read at report time and before each save, not every step
    monkeypatch.setattr(
        "trainer.run.train.LossGuard", functools.partial(guards.LossGuard, sync_each_step=False)
    )
    code, events = run(settings(tiny_model("sd15"), data, out, save_last_n_epochs=1))
    assert code == 1
    message = error_of(events)["message"]
    assert "The loss became nan at step 2" in message and "learning rate" in message
    assert "Traceback" not in message
    assert (out / "toy.safetensors").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == [
        "toy-000001-state",
        "toy-000001.safetensors",
        "toy.safetensors",
    ]
    assert_complete(out / "toy-000001.safetensors")


def test_loss_guard_names_the_first_bad_step(tmp_path):
    cfg, _ = config_from_dict(settings(Path("m"), tmp_path, tmp_path / "o", mixed_precision="no"))
    for sync in (True, False):
        guard = guards.LossGuard(cfg, sync_each_step=sync)
        guard.observe(torch.tensor(0.5), 1)
        guard.check()
        with pytest.raises(guards.TrainingError, match="became inf at step 2"):
            guard.observe(torch.tensor(float("inf")), 2)
            guard.observe(torch.tensor(float("nan")), 3)
            guard.check()


def test_out_of_memory_names_the_settings_and_the_ways_out(tiny_model, data, tmp_path, monkeypatch):
    def oom(self, batch, generator):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Run, "step_loss", oom)
    code, events = run(settings(tiny_model("sd15"), data, tmp_path / "out", optimizer="AdamW"))
    assert code == 1
    error = error_of(events)
    message, hint = error["message"], error["hint"]
    assert message.startswith("The GPU ran out of memory during a training step")
    for setting in (
        "train_batch_size 2",
        "max_resolution 64,64",
        "gradient_checkpointing off",
        "cache_latents on",
        "optimizer AdamW",
    ):
        assert setting in message
    for way in (
        "train_batch_size",
        "gradient_checkpointing",
        "max_resolution",
        "network_train_unet_only",
        "AdamW8bit",
    ):
        assert way in hint
    assert "Traceback" not in message + hint
    assert Path(error["log_file"]).is_file()  # the traceback went to the log


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_disk_full_at_save_keeps_the_previous_file(tiny_model, data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    save_file({"x": torch.ones(2)}, str(out / "toy.safetensors"))
    before = (out / "toy.safetensors").read_bytes()
    real_fsync = os.fsync

    def full(fd):  # the epoch-1 LoRA and state get through; the final file finds the disk full
        if ".toy.safetensors.tmp" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    code, events = run(settings(tiny_model("sd15"), data, out, epoch=2))
    assert code == 1
    error = error_of(events)
    assert "the disk is full" in error["message"] and "unchanged" in error["message"]
    assert "Free some disk space" in error["hint"]
    assert (out / "toy.safetensors").read_bytes() == before
    assert_complete(out / "toy-000001.safetensors")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp left behind


def test_read_only_folder_at_save_time_is_explained(tmp_path, monkeypatch):
    target = tmp_path / "toy.safetensors"
    save_file({"x": torch.ones(2)}, str(target))
    before = target.read_bytes()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(SaveError) as info:
        save_lora(target, {"x": torch.zeros(2)}, {})
    assert target.read_bytes() == before
    cfg, _ = config_from_dict(settings(Path("m"), tmp_path, tmp_path))
    message, hint = guards.explain_failure(cfg, info.value)
    assert "read-only" in message and "unchanged" in message and "can write to" in hint


def test_a_killed_writer_leaves_nothing_the_next_run_cannot_clean(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    pid = int(dead.stdout)
    (tmp_path / f".toy.safetensors.tmp-{pid}").write_bytes(b"half")
    (tmp_path / f".toy-state.tmp-{pid}").mkdir()
    (tmp_path / f".toy-000001-state.old-{pid}").mkdir()  # died between the two renames
    (tmp_path / f".toy-000001-state.old-{pid}" / "state.json").write_text("{}")
    (tmp_path / f".mine.tmp-{os.getpid()}").write_bytes(b"in progress")  # a live writer
    notes = clean_stale_temps(tmp_path)
    assert len(notes) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".mine.tmp-{os.getpid()}", "toy-000001-state"]


def test_out_of_memory_while_caching_latents_suggests_a_smaller_vae_batch(monkeypatch):
    from trainer.config import TrainingConfig
    from trainer.run.guards import out_of_memory_message

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # fp8_base is advice on a CUDA GPU only

    def _cache_latents():  # the phase is read from the traceback's function names
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    try:
        _cache_latents()
    except torch.cuda.OutOfMemoryError as exc:
        error = exc
    message, hint = out_of_memory_message(TrainingConfig(vae_batch_size=8, mixed_precision="bf16"), error)
    assert "while caching the latents" in message
    assert hint.splitlines()[1].startswith("- lower vae_batch_size (now 8")
    assert "fp8_base" in hint
