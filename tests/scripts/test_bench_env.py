"""scripts/bench_env.py: ours at its defaults against user-set environment variables, alternated."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest


def test_variants_are_named_assignments(script) -> None:
    env = script("bench_env")
    assert env._variants(["active=OMP_WAIT_POLICY=ACTIVE", "both=A=1", "both=B=2"]) == {
        "default": {},
        "active": {"OMP_WAIT_POLICY": "ACTIVE"},
        "both": {"A": "1", "B": "2"},
    }
    with pytest.raises(SystemExit, match="NAME=KEY=VALUE"):
        env._variants(["ACTIVE"])


def test_runs_alternate_and_each_gets_only_its_variable(script, tmp_path: Path, monkeypatch) -> None:
    env = script("bench_env")
    sd = importlib.import_module("bench_sdscripts")  # as bench_env imports it (scripts/ on sys.path)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # the user's shell: not what a default run sees
    seen = []

    def fake_run(command, environ, cwd, steps_file, log, warmup):
        seen.append(environ.get("OMP_WAIT_POLICY"))
        preset = json.loads(Path(command[command.index("--config") + 1]).read_text())
        assert preset["max_train_steps"] == 1 + 3 + 1 and preset["num_cpu_threads_per_process"] == 2
        return {"s_per_step": {None: 2.0, "ACTIVE": 2.2, "PASSIVE": 3.0}[environ.get("OMP_WAIT_POLICY")]}

    monkeypatch.setattr(sd, "run_once", fake_run)
    out = tmp_path / "env.json"
    env.main(["--model-file", "m.safetensors", "--runs", "2", "--steps", "3", "--json", str(out)])
    assert seen == [None, "ACTIVE", "PASSIVE", "PASSIVE", "ACTIVE", None]
    report = json.loads(out.read_text())
    assert report["default"]["ratio_to_default"] == 1.0
    assert report["active"]["ratio_to_default"] == 1.1 and report["passive"]["ratio_to_default"] == 1.5
