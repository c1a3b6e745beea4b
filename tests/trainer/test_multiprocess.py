"""num_processes 2: `python -m trainer` starts accelerate itself (CPU, gloo); one set of files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tests.helpers import ROOT, make_toy_dataset, write_preset


@pytest.mark.slow
def test_two_process_run_writes_one_set_of_files(tiny_model, tmp_path):
    data = make_toy_dataset(tmp_path / "data", n=4)
    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        data,
        epoch=2,
        save_every_n_epochs=1,
        train_batch_size=1,
        output_name="ddp",
        num_processes=2,
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The preset's num_processes makes the command start `accelerate launch --multi_gpu`;
    # without CUDA its workers train on the CPU over gloo.
    cmd = [sys.executable, "-m", "trainer", "--config", str(preset), "--events", "jsonl"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=400, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["ddp-000001.safetensors", "ddp.safetensors"]
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    finished = [e for e in events if e["kind"] == "finished"]
    assert len(finished) == 1  # only the main process reports
    plan = next(e for e in events if e["kind"] == "plan")
    assert plan["total_steps"] == 4  # 4 images, batch 1, 2 processes -> 2 steps per epoch
    with safe_open(out / "ddp.safetensors", "pt") as f:
        assert f.metadata()["ss_steps"] == "4"


@pytest.mark.slow
def test_stop_reaching_one_process_stops_both_at_the_same_step(tiny_model, tmp_path):
    """SIGTERM to rank 1 only: both processes stop after the same step and save once, instead
    of rank 0 waiting forever for a rank that has left."""
    import signal
    import time

    import psutil

    data = make_toy_dataset(tmp_path / "data", n=4)
    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        data,
        epoch=1,
        max_train_steps=400,
        save_every_n_epochs=1,
        train_batch_size=1,
        output_name="ddp",
        num_processes=2,
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", "--config", str(preset), "--events", "jsonl"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stdout:  # wait until training is under way
            if line.startswith("{") and json.loads(line)["kind"] == "step":
                break
        workers = [
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if p.environ().get("LOCAL_RANK") == "1" and "trainer" in " ".join(p.cmdline())
        ]
        assert len(workers) == 1
        workers[0].send_signal(signal.SIGTERM)
        rest, errors = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            time.sleep(1)
    assert proc.returncode == 0, errors[-3000:]
    events = [json.loads(line) for line in rest.splitlines() if line.startswith("{")]
    [stopped] = [e for e in events if e["kind"] == "stopped"]
    assert stopped["step"] < 400
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"ddp-stopped-{stopped['step']}.safetensors"]


@pytest.mark.slow
def test_a_two_process_run_resumes_exactly(tiny_model, tmp_path):
    """Every process's noise generator is in the training state, so a resumed two-process
    run ends with the very file of the run that never stopped."""
    from safetensors.torch import load_file

    data = make_toy_dataset(tmp_path / "data", n=4)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(name: str, **over) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        preset = write_preset(
            folder,
            tiny_model("sd15"),
            data,
            epoch=2,
            save_every_n_epochs=1,
            train_batch_size=1,
            output_name="ddp",
            num_processes=2,
            save_state=True,
            save_precision="float",
            **over,
        )
        r = subprocess.run(
            [sys.executable, "-m", "trainer", "--config", str(preset), "--events", "jsonl"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=400,
            check=False,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        return folder / "out"

    full = run("a")
    resumed = run("b", resume=str(full / "ddp-000001-state"))
    a, b = load_file(str(full / "ddp.safetensors")), load_file(str(resumed / "ddp.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
