"""Resume: a state a killed save left aside is found and put back; another model under the
same name is refused (Hardening, round two: item 11)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.helpers import make_toy_dataset, resumable_settings, train_with_losses
from trainer.__main__ import main
from trainer.config import config_from_dict
from trainer.data.resolved import resolve_dataset
from trainer.models.identity import model_identity
from trainer.models.tiny import write_tiny_model
from trainer.run.state import check_resume
from trainer.run.train import train_with_events


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    """A run on a copy of the tiny model in a folder named `model`, its states kept."""
    tmp = tmp_path_factory.mktemp("hardening_resume")
    data = make_toy_dataset(tmp / "data", n=4, size=64)
    model = tmp / "base" / "model"
    shutil.copytree(tiny_model("sd15"), model)
    code, _, _ = train_with_losses(resumable_settings(model, data, tmp / "a"))
    assert code == 0
    return {"data": data, "model": model, "state": tmp / "a" / "toy-000001-state"}


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def test_a_state_a_killed_save_left_aside_is_found_and_put_back(trained, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    state = out / "toy-000001-state"
    aside = out / f".toy-000001-state.old-{_dead_pid()}"  # killed between the two renames
    shutil.copytree(trained["state"], aside)
    values = resumable_settings(trained["model"], trained["data"], out, resume=str(state))
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps(values), encoding="utf-8")

    assert main(["--config", str(preset), "--dry-run"]) == 0  # found, and left as it is
    assert f"was left as {aside}" in capsys.readouterr().out
    assert aside.is_dir() and not state.exists()

    cfg, _ = config_from_dict(values)
    events: list = []
    assert train_with_events(cfg, events.append) == 0
    assert any(e.kind == "log" and f"restored {state}" in e.data["message"] for e in events)
    assert any(e.kind == "log" and "Resumed from" in e.data["message"] for e in events)
    assert (out / "toy.safetensors").is_file() and not aside.exists()


def test_a_live_writer_s_folder_is_not_taken(trained, tmp_path):
    import os

    aside = tmp_path / f".toy-000001-state.old-{os.getpid()}"  # a save in progress
    shutil.copytree(trained["state"], aside)
    cfg, _ = config_from_dict(
        resumable_settings(
            trained["model"], trained["data"], tmp_path, resume=str(tmp_path / "toy-000001-state")
        )
    )
    problems, _ = check_resume(cfg, resolve_dataset(cfg), total_steps=4)
    assert problems and "does not exist" in problems[0].message


def test_another_model_under_the_same_name_is_refused_naming_the_difference(trained, tmp_path):
    other = write_tiny_model("sd15", "diffusers", tmp_path / "model", seed=1)  # same folder name
    values = resumable_settings(other, trained["data"], tmp_path / "out", resume=str(trained["state"]))
    cfg, _ = config_from_dict(values)
    problems, _ = check_resume(cfg, resolve_dataset(cfg), total_steps=4)
    text = "\n".join(p.message for p in problems)
    assert (
        "base model: the state was trained on 'model'" in text and "other weights under the same name" in text
    )
    events: list = []
    assert train_with_events(cfg, events.append) == 2
    assert [e.kind for e in events] == ["error"] and "other weights" in events[0].data["message"]


def test_a_moved_copy_of_the_same_model_still_resumes(trained, tmp_path):
    moved = shutil.copytree(trained["model"], tmp_path / "renamed-model")
    cfg, _ = config_from_dict(
        resumable_settings(moved, trained["data"], tmp_path / "out", resume=str(trained["state"]))
    )
    problems, _ = check_resume(cfg, resolve_dataset(cfg), total_steps=4)
    assert problems == []


def test_single_files_of_the_same_layout_are_told_apart(tiny_single_file, tmp_path):
    mine = tiny_single_file("sd15")
    other = write_tiny_model("sd15", "single-file", tmp_path / mine.name, seed=1)
    a, b = model_identity(str(mine)), model_identity(str(other))
    assert a["name"] == b["name"] and a["bytes"] == b["bytes"]  # what the old check compared
    assert a["weights"] != b["weights"]
    assert model_identity(str(shutil.copy(mine, tmp_path / "copy.safetensors")))["weights"] == a["weights"]
