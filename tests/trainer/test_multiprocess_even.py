"""Two processes and an odd number of batches: both step together and the run finishes."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, make_toy_dataset, write_preset


@pytest.mark.slow
@pytest.mark.parametrize(("images", "batch", "accumulation"), [(3, 1, 1), (3, 2, 2)])
def test_uneven_batches_on_two_processes_finish_with_one_set_of_files(
    tiny_model, tmp_path, images, batch, accumulation
):
    data = make_toy_dataset(tmp_path / "data", n=images)
    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        data,
        epoch=2,
        save_every_n_epochs=1,
        train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        output_name="odd",
        num_processes=2,
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "trainer", "--config", str(preset), "--events", "jsonl"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    plan = next(e for e in events if e["kind"] == "plan")
    finished = [e for e in events if e["kind"] == "finished"]
    assert len(finished) == 1
    steps = [e for e in events if e["kind"] == "step"]
    assert steps and steps[-1]["step"] == plan["total_steps"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "odd-000001.safetensors",
        "odd.safetensors",
    ]
