"""Several GPUs, as a Kohya GUI user sets them: accelerate's launch settings, GPU ids,
the steps each process shares, and the CLI starting accelerate itself."""

import json
import sys

from tests.helpers import KOHYA_PATHS, DataCfg, load_kohya, make_toy_dataset, write_preset
from trainer.config import config_from_dict
from trainer.config.validate import ConfigError
from trainer.launch import accelerate_command, under_launcher

BASE = {**KOHYA_PATHS, "mixed_precision": "no"}  # what load_kohya reads


def test_kohya_accelerate_settings_load_and_build_the_launch_arguments():
    cfg, _ = load_kohya(num_processes="2", gpu_ids="0, 1", main_process_port="29600", multi_gpu=True)
    assert (cfg.num_processes, cfg.main_process_port) == (2, 29600)
    cmd = accelerate_command("run.json", cfg, python="py")
    assert cmd[:9] == [
        "py",
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
    ]
    assert cmd[cmd.index("--gpu_ids") + 1] == "0,1"
    assert cmd[cmd.index("--main_process_port") + 1] == "29600"
    assert cmd[cmd.index("--num_cpu_threads_per_process") + 1] == str(cfg.num_cpu_threads_per_process)
    assert cmd[-5:] == ["trainer", "--config", "run.json", "--events", "jsonl"]
    assert all(isinstance(part, str) for part in cmd)  # an argument list, never a shell string


def test_gpu_ids_are_checked_against_the_process_count():
    for ids, n, word in (("0,a", 1, "GPU numbers"), ("0", 2, "one GPU per process")):
        try:
            load_kohya(gpu_ids=ids, num_processes=n)
        except ConfigError as exc:
            assert word in " ".join(exc.by_key()["gpu_ids"])
        else:
            raise AssertionError(f"gpu_ids {ids!r} with {n} processes must be refused")


def test_inside_a_launcher_the_trainer_does_not_launch_again():
    assert under_launcher({"LOCAL_RANK": "0", "WORLD_SIZE": "2"})
    assert not under_launcher({"PATH": "/usr/bin"})


def test_the_plan_counts_the_steps_each_process_shares(tiny_model, tmp_path):
    from trainer.plan.training_plan import build_plan

    data = make_toy_dataset(tmp_path / "data", n=4)
    preset = write_preset(tmp_path, tiny_model("sd15"), data, train_batch_size=1, epoch=1)
    one, _ = config_from_dict(json.loads(preset.read_text()))
    assert build_plan(one).total_steps == 4
    assert build_plan(one.model_copy(update={"num_processes": 2})).total_steps == 2


def test_the_cli_starts_accelerate_itself_for_several_processes(tmp_path, monkeypatch):
    import subprocess

    from trainer.__main__ import main

    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({**BASE, "num_processes": 2}), encoding="utf-8")
    seen = {}

    class Proc:
        def __init__(self, cmd, **kwargs):
            seen["cmd"], seen["kwargs"] = cmd, kwargs

        def wait(self):
            return 0

    for key in ("LOCAL_RANK", "WORLD_SIZE", "ACCELERATE_DYNAMO_BACKEND"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(subprocess, "Popen", Proc)
    assert main(["--config", str(preset), "--resume", "C:/out/mine-state"]) == 0
    cmd = seen["cmd"]
    assert cmd[0] == sys.executable and "--multi_gpu" in cmd and "shell" not in seen["kwargs"]
    assert cmd[cmd.index("--config") + 1] == str(preset)
    assert cmd[-2:] == ["--resume", "C:/out/mine-state"] and "--events" not in cmd


def test_preflight_checks_the_processes_against_the_gpus(monkeypatch, tmp_path):
    import torch

    from trainer.run.preflight import run_preflight

    for key in ("LOCAL_RANK", "WORLD_SIZE", "ACCELERATE_DYNAMO_BACKEND"):
        monkeypatch.delenv(key, raising=False)
    base = {**BASE, "train_data_dir": str(tmp_path), "output_dir": str(tmp_path / "out")}
    cfg, _ = config_from_dict({**base, "num_processes": 2})
    _, warnings = run_preflight(cfg)
    if not torch.cuda.is_available():
        assert any("num_processes 2 without an NVIDIA GPU" in w for w in warnings)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    problems, _ = run_preflight(cfg)
    assert any(p.key == "num_processes" and "this machine has 1" in p.message for p in problems)
    cfg, _ = config_from_dict({**base, "num_processes": 2, "gpu_ids": "0,3"})
    problems, _ = run_preflight(cfg)
    assert any(p.key == "gpu_ids" and "GPU 3 does not exist" in p.message for p in problems)


def test_sigterm_to_the_launching_process_reaches_the_training_processes(tmp_path, monkeypatch):
    """`python -m trainer` with num_processes > 1 runs `accelerate launch`; a SIGTERM sent to
    it alone (systemd, `kill PID`) is passed on, so the processes stop and save instead of
    being left running."""
    import os
    import signal
    import subprocess

    import trainer.__main__ as cli

    sent: list[int] = []

    class Launched:  # accelerate launch, which gets SIGTERM while we wait for it
        def __init__(self, cmd):
            self.waits = 0

        def send_signal(self, signum):
            sent.append(signum)

        def wait(self):
            self.waits += 1
            if self.waits == 1:
                os.kill(os.getpid(), signal.SIGTERM)  # delivered to our handler here
            return 0

    monkeypatch.setattr(subprocess, "Popen", Launched)
    before = signal.getsignal(signal.SIGTERM)
    cfg = DataCfg(output_dir=str(tmp_path), num_processes=2)
    args = cli._args(["--config", str(tmp_path / "p.json")])
    assert cli._launch(args, cfg) == 0
    assert sent == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) == before  # our handler goes with the launch
