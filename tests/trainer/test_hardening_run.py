"""A run's failures explained for their real cause, and one run per output (Hardening,
round two: items 8 and 13, and the out-of-memory advice of "CUDA path" item 3)."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import make_toy_dataset, toy_settings
from trainer.config import TrainingConfig, config_from_dict
from trainer.network.lora_file import SaveError
from trainer.run.guards import explain_failure, out_of_memory_message
from trainer.run.output_lock import OutputLocked, acquire, lock_path, output_lock
from trainer.run.train import Run, train_with_events


def _save_failure(code: int, text: str) -> SaveError:
    try:
        raise SaveError(f"could not save out/toy.safetensors ({text})") from OSError(code, text)
    except SaveError as exc:
        return exc


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (errno.ENOSPC, "Free some disk space"),
        (errno.EDQUOT, "Free some disk space"),
        (errno.ENAMETOOLONG, "Choose a shorter output_name (now 3 bytes)"),
        (errno.EACCES, "Choose an output folder you can write to"),
        (errno.EROFS, "Choose an output folder you can write to"),
        (errno.EIO, "Fix what stopped the write (x)"),
    ],
)
def test_save_advice_fits_the_cause(code, advice):
    cfg = TrainingConfig(output_name="toy", save_state=True)
    message, hint = explain_failure(cfg, _save_failure(code, "x"))
    assert advice in hint and "Resume set to the newest -state folder" in hint
    assert ("Free some disk space" in hint) == (code in (errno.ENOSPC, errno.EDQUOT))
    assert "unchanged" in message


def _oom_hint(monkeypatch, cuda: bool, **settings) -> str:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    cfg = TrainingConfig(mixed_precision="bf16", **settings)
    return out_of_memory_message(cfg, torch.cuda.OutOfMemoryError("CUDA out of memory"))[1]


@pytest.mark.parametrize(
    "lora_type", ["Standard", "Kohya LoCon", "LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr"]
)
def test_out_of_memory_advice_offers_fp8_base_where_it_works(monkeypatch, lora_type):
    assert "fp8_base" in _oom_hint(monkeypatch, True, LoRA_type=lora_type)


@pytest.mark.parametrize("lora_type", ["LyCORIS/iA3", "LyCORIS/BOFT", "LyCORIS/Native Fine-Tuning"])
def test_out_of_memory_advice_leaves_fp8_base_out_for_lycoris_types_it_refuses(monkeypatch, lora_type):
    assert "fp8_base" not in _oom_hint(monkeypatch, True, LoRA_type=lora_type)


def test_out_of_memory_advice_leaves_fp8_base_out_without_a_cuda_gpu(monkeypatch):
    assert "fp8_base" not in _oom_hint(monkeypatch, False)


# ---- item 13: one run per output (a lock file) ---------------------------------------------------
def _toy(tiny_model, tmp_path, **over) -> TrainingConfig:
    data = make_toy_dataset(tmp_path / "data", n=2)
    cfg, _ = config_from_dict(toy_settings(tiny_model("sd15"), data, tmp_path / "out", epoch=1, **over))
    return cfg


def _holder(lock: Path, pid: int, host: str | None = None, **extra) -> None:
    lock.parent.mkdir(parents=True, exist_ok=True)
    info = {"pid": pid, "host": host or socket.gethostname(), "started": "2030-01-02 03:04:05", **extra}
    lock.write_text(json.dumps(info), encoding="utf-8")


@pytest.fixture
def sleeper():
    """A live process of this host that holds no lock of its own: the 'running' run."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def test_a_run_holds_the_output_lock_while_it_trains_and_releases_it(tiny_model, tmp_path, monkeypatch):
    cfg = _toy(tiny_model, tmp_path)
    lock = tmp_path / "out" / ".toy.lock"
    seen = []
    original = Run.step_loss

    def spy(self, batch, generator):
        seen.append(json.loads(lock.read_text(encoding="utf-8")))
        return original(self, batch, generator)

    monkeypatch.setattr(Run, "step_loss", spy)
    assert train_with_events(cfg, lambda e: None) == 0
    assert seen and seen[0]["pid"] == os.getpid() and seen[0]["host"] == socket.gethostname()
    assert not lock.exists()


def test_a_second_run_into_the_same_output_is_refused_naming_the_running_one(
    tiny_model, tmp_path, sleeper, capsys
):
    cfg = _toy(tiny_model, tmp_path)
    lock = tmp_path / "out" / ".toy.lock"
    _holder(lock, sleeper)
    events: list = []
    assert train_with_events(cfg, events.append) == 2
    message = next(e.data["message"] for e in events if e.kind == "error")
    assert f"PID {sleeper}, started 2030-01-02 03:04:05" in message and str(lock) in message
    assert "started" not in [e.kind for e in events]
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".toy.lock"]  # nothing written
    assert json.loads(lock.read_text(encoding="utf-8"))["pid"] == sleeper  # still the other run's

    from trainer.__main__ import main  # the dry run refuses it too, in the same words

    preset = tmp_path / "p.json"
    preset.write_text(json.dumps(cfg.model_dump()), encoding="utf-8")
    assert main(["--config", str(preset), "--dry-run"]) == 2
    assert f"PID {sleeper}, started 2030-01-02 03:04:05" in capsys.readouterr().err


def test_a_stale_lock_of_a_killed_run_is_replaced(tiny_model, tmp_path):
    cfg = _toy(tiny_model, tmp_path)
    lock = tmp_path / "out" / ".toy.lock"
    _holder(lock, _dead_pid())
    assert train_with_events(cfg, lambda e: None) == 0
    assert not lock.exists() and (tmp_path / "out" / "toy.safetensors").is_file()


def test_the_lock_is_released_on_errors_and_on_stop(tiny_model, tmp_path, monkeypatch):
    import threading

    cfg = _toy(tiny_model, tmp_path)
    lock = tmp_path / "out" / ".toy.lock"
    stop = threading.Event()
    stop.set()  # Stop pressed before the first step ends
    events: list = []
    assert train_with_events(cfg, events.append, stop) == 0
    assert "stopped" in [e.kind for e in events] and not lock.exists()

    def broken(self, batch, generator):
        raise RuntimeError("boom")

    monkeypatch.setattr(Run, "step_loss", broken)
    assert train_with_events(cfg, lambda e: None) == 1
    assert not lock.exists()


def test_the_lock_is_taken_atomically_once_and_only_by_the_main_process(tmp_path):
    cfg = TrainingConfig(output_dir=str(tmp_path / "out"), output_name="toy")
    with output_lock(cfg, is_main=False):
        assert not lock_path(cfg).exists()  # ranks other than 0 never take it
    with output_lock(cfg, is_main=True):
        assert json.loads(lock_path(cfg).read_text(encoding="utf-8"))["pid"] == os.getpid()
        with pytest.raises(OutputLocked, match=f"PID {os.getpid()}"):
            acquire(cfg)  # O_EXCL: a second taker (here the same process) is refused
    assert not lock_path(cfg).exists()


def test_a_lock_from_another_host_is_never_judged_stale(tmp_path):
    cfg = TrainingConfig(output_dir=str(tmp_path / "out"), output_name="toy")
    _holder(lock_path(cfg), _dead_pid(), host="another-machine")
    with pytest.raises(OutputLocked, match="on another-machine"):
        acquire(cfg)


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc (Linux)")
def test_a_reused_pid_does_not_keep_a_stale_lock_alive(tmp_path):
    cfg = TrainingConfig(output_dir=str(tmp_path / "out"), output_name="toy")
    _holder(lock_path(cfg), os.getpid(), process_start="1")  # our PID, but another process's start
    with output_lock(cfg, is_main=True):
        assert json.loads(lock_path(cfg).read_text(encoding="utf-8"))["process_start"] != "1"
