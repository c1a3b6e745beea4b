"""The run queue: runs one after another, a failure does not stop it, a crash resumes."""

from __future__ import annotations

import json
import shutil

from tests.helpers import make_toy_dataset, toy_settings
from trainer.__main__ import main
from trainer.queue import read_queue
from trainer.queue.runner import run_queue
from trainer.queue.store import change_queue

SHORT = {"epoch": 1, "save_every_n_epochs": 1}


def _preset(tmp, model, name, data=None, **over):
    data = data or make_toy_dataset(tmp / f"data-{name}")
    path = tmp / f"{name}.json"
    values = toy_settings(model, data, tmp / "out", output_name=name, **{**SHORT, **over})
    path.write_text(json.dumps(values), encoding="utf-8")
    return path, data


def test_a_failing_run_is_marked_failed_and_the_queue_goes_on(tmp_path, tiny_model, capsys):
    model, qfile = tiny_model("sd15"), tmp_path / "queue.json"
    presets = [_preset(tmp_path, model, name) for name in ("first", "second", "third")]
    for preset, _ in presets:
        assert main(["queue", "--file", str(qfile), "add", str(preset)]) == 0
    shutil.rmtree(presets[1][1])  # the second run's images moved away overnight

    assert main(["queue", "--file", str(qfile), "run"]) == 1  # one failed
    first, second, third = read_queue(qfile).entries
    assert (first.state, second.state, third.state) == ("done", "failed", "done")
    assert first.outputs == [str(tmp_path / "out" / "first.safetensors")]
    assert (tmp_path / "out" / "third.safetensors").is_file()
    assert "train_data_dir" in second.message and not (tmp_path / "out" / "second.safetensors").exists()

    assert main(["queue", "--file", str(qfile), "list"]) == 0
    listed = capsys.readouterr().out
    assert "failed" in listed and "third.safetensors" in listed
    assert main(["queue", "--file", str(qfile), "remove", "2"]) == 0
    assert [e.name for e in read_queue(qfile).entries] == ["first", "third"]


def test_add_refuses_a_bad_preset_with_every_problem(tmp_path, tiny_model, capsys):
    preset, _ = _preset(tmp_path, tiny_model("sd15"), "bad", learning_rate=-1)
    values = json.loads(preset.read_text())
    values["train_data_dir"] = str(tmp_path / "nowhere")
    preset.write_text(json.dumps(values))
    qfile = tmp_path / "queue.json"
    assert main(["queue", "--file", str(qfile), "add", str(preset)]) == 2
    err = capsys.readouterr().err
    assert "learning_rate" in err and "train_data_dir" in err and "Traceback" not in err
    assert not read_queue(qfile).entries


def test_a_run_left_running_by_a_dead_process_resumes_from_its_state(tmp_path, tiny_model):
    from tests.helpers import train_with_losses
    from trainer.config import config_from_dict, preset_dict

    data = make_toy_dataset(tmp_path / "data")
    values = toy_settings(tiny_model("sd15"), data, tmp_path / "out", output_name="night", epoch=2)
    values.update(save_state=True, save_every_n_epochs=1)
    qfile = tmp_path / "queue.json"
    settings = preset_dict(config_from_dict(values)[0])

    def crashed(queue):  # what the file holds after the process was killed mid-run
        entry = queue.add("night", settings)
        entry.state, entry.started = "running", 0.0
        queue.runner = {"pid": 2**22 + 12345, "host": __import__("socket").gethostname()}

    change_queue(qfile, crashed)
    assert train_with_losses(values, stop_after=3)[0] == 0  # the killed run got to step 3
    events = []
    run_queue(qfile, events.append)
    (entry,) = read_queue(qfile).entries
    assert entry.state == "done" and entry.note == "resumed from night-stopped-3-state"
    assert (tmp_path / "out" / "night.safetensors").is_file()
    steps = [e.data["step"] for e in events if e.kind == "step"]
    assert steps and min(steps) == 4  # trained on from where it stopped


def test_a_run_left_running_without_save_state_restarts(tmp_path, tiny_model):
    data = make_toy_dataset(tmp_path / "data")
    values = toy_settings(tiny_model("sd15"), data, tmp_path / "out", output_name="plain", **SHORT)
    qfile = tmp_path / "queue.json"

    def crashed(queue):
        entry = queue.add("plain", values)
        entry.state = "running"

    change_queue(qfile, crashed)
    run_queue(qfile, lambda e: None)
    (entry,) = read_queue(qfile).entries
    assert entry.state == "done" and entry.note.startswith("restarted from the beginning")
    assert entry.outputs == [str(tmp_path / "out" / "plain.safetensors")]


def test_a_queue_killed_mid_run_finishes_on_the_next_queue_run(tmp_path, tiny_model):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import ROOT

    preset, _ = _preset(tmp_path, tiny_model("sd15"), "killed", epoch=12, save_every_n_epochs=4)
    values = json.loads(preset.read_text())
    preset.write_text(json.dumps({**values, "save_state": True}))
    qfile = tmp_path / "queue.json"
    assert main(["queue", "--file", str(qfile), "add", str(preset)]) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "trainer", "queue", "--file", str(qfile), "run"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while not (tmp_path / "out" / "killed-000004-state").is_dir() and proc.poll() is None:
            assert time.time() < deadline, "the queue never saved a state"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # the machine went down mid-run
    finally:
        proc.wait()
    (entry,) = read_queue(qfile).entries
    assert entry.state == "running"  # as the dead process left it

    events = []
    run_queue(qfile, events.append)
    (entry,) = read_queue(qfile).entries
    assert entry.state == "done" and entry.note.startswith("resumed from killed-0000")
    assert str(tmp_path / "out" / "killed.safetensors") in entry.outputs
    assert min(e.data["step"] for e in events if e.kind == "step") > 1


def test_the_queue_adds_little_between_runs_and_stops_after_the_current_one(tmp_path, tiny_model):
    import time

    from trainer.queue.cli import change

    qfile = tmp_path / "queue.json"
    data = make_toy_dataset(tmp_path / "data")
    for name in ("a", "b", "c"):
        values = toy_settings(tiny_model("sd15"), data, tmp_path / "out", output_name=name)
        change_queue(qfile, lambda q, v=values, n=name: q.add(n, v))
    gaps, last_end = [], None

    def fake_train(cfg, on_event, stop):  # the run itself takes no time: what is left is the queue's
        nonlocal last_end
        if last_end is not None:
            gaps.append(time.perf_counter() - last_end)
        if cfg.output_name == "b":
            change(qfile, "stop_after_current")  # pressed while b runs
        last_end = time.perf_counter()
        return 0

    run_queue(qfile, lambda e: None, train=fake_train)
    assert [e.state for e in read_queue(qfile).entries] == ["done", "done", "waiting"]
    assert gaps and max(gaps) < 2.0
    run_queue(qfile, lambda e: None, train=fake_train)  # the next run goes on with c
    assert [e.state for e in read_queue(qfile).entries] == ["done", "done", "done"]
