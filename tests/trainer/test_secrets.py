"""Secrets never leave the settings, and no user text reaches a shell or an interpreter.

A token typed into the form (or found in a kohya_ss preset) must not land in a preset,
a LoRA's metadata, a training state, a log or an event, even when an error quotes it.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from tests.helpers import ROOT, make_toy_dataset
from trainer.config import config_from_dict
from trainer.presets import save_preset
from trainer.run.train import Run, train_with_events

TOKEN = "hf_TopSecret0123456789"
WANDB = "wandb0123456789abcdef"


def test_kohya_preset_secrets_are_not_echoed_or_saved(tmp_path):
    cfg, warnings = config_from_dict(
        {
            "pretrained_model_name_or_path": "m",
            "train_data_dir": "d",
            "output_dir": "o",
            "huggingface_token": TOKEN,
            "wandb_api_key": WANDB,
            "log_tracker_config": "x",
        }
    )
    assert cfg.huggingface_token == TOKEN  # usable for this run...
    assert any("wandb_api_key" in w for w in warnings)
    assert not any(WANDB in w or TOKEN in w for w in warnings)
    text = save_preset(cfg, tmp_path / "p.json").read_text(encoding="utf-8")
    assert TOKEN not in text and "huggingface_token" not in text  # ...never written


def test_the_dry_run_plan_does_not_print_the_token(tiny_model, tmp_path, capsys):
    from trainer.__main__ import main

    data = make_toy_dataset(tmp_path / "data", n=1, size=64)
    preset = tmp_path / "p.json"
    preset.write_text(
        json.dumps(
            {
                "pretrained_model_name_or_path": str(tiny_model("sd15")),
                "mixed_precision": "no",
                "optimizer": "AdamW",
                "train_data_dir": str(data),
                "output_dir": str(tmp_path / "o"),
                "huggingface_token": TOKEN,
                "max_resolution": "64,64",
                "min_bucket_reso": 64,
            }
        )
    )
    assert main(["--config", str(preset), "--dry-run", "--json"]) == 0
    out = capsys.readouterr().out
    assert "train_batch_size" in out and TOKEN not in out


def test_no_file_event_or_log_of_a_run_holds_the_token(tiny_model, tmp_path, monkeypatch):
    data = make_toy_dataset(tmp_path / "data", n=2, size=64)
    out, logs = tmp_path / "out", tmp_path / "logs"
    cfg, _ = config_from_dict(
        {
            "pretrained_model_name_or_path": str(tiny_model("sd15")),
            "train_data_dir": str(data),
            "output_dir": str(out),
            "logging_dir": str(logs),
            "output_name": "toy",
            "mixed_precision": "no",
            "optimizer": "AdamW",
            "train_batch_size": 2,
            "epoch": 3,
            "save_every_n_epochs": 1,
            "max_resolution": "64,64",
            "min_bucket_reso": 64,
            "network_dim": 2,
            "network_alpha": 2,
            "save_state": True,
            "huggingface_token": TOKEN,
            "training_comment": "made for a test",
            "num_cpu_threads_per_process": 1,
        }
    )
    original = Run.step_loss

    def leaky(self, batch, generator):  # an error that quotes the token, at step 2
        if self.keeper.position.step >= 1:
            raise RuntimeError(f"401 Unauthorized for token {TOKEN}")
        return original(self, batch, generator)

    monkeypatch.setattr(Run, "step_loss", leaky)
    events: list = []
    assert train_with_events(cfg, events.append) == 1
    written = [p for folder in (out, logs) for p in folder.rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert {"toy-000001.safetensors", "state.json", "training.pt", "toy.log"} <= names
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), path
    state = json.loads((out / "toy-000001-state" / "state.json").read_text(encoding="utf-8"))
    assert "huggingface_token" not in state["config"]
    assert "***" in (logs / "toy.log").read_text(encoding="utf-8")  # the crash log
    assert [e.kind for e in events if TOKEN in e.to_json()] == []
    assert "***" in next(e for e in events if e.kind == "error").data["message"]


def _python_files() -> list[Path]:
    files = [
        ROOT / "gui.py",
        *(ROOT / "trainer").rglob("*.py"),
        *(ROOT / "lora_gui").rglob("*.py"),
        *(ROOT / "scripts").rglob("*.py"),
    ]
    return [f for f in files if f.is_file()]


def _dangerous_calls(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = (
            func.id
            if isinstance(func, ast.Name)
            else (f"{getattr(func.value, 'id', '?')}.{func.attr}" if isinstance(func, ast.Attribute) else "")
        )
        if name in (
            "eval",
            "exec",
            "compile",
            "os.system",
            "os.popen",
            "pickle.load",
            "pickle.loads",
            "marshal.loads",
            "yaml.load",
        ):
            found.append(f"{name}() at line {node.lineno}")
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                found.append(f"shell= at line {node.lineno}")
        if name == "torch.load" and not any(
            kw.arg == "weights_only" and isinstance(kw.value, ast.Constant) and kw.value.value is True
            for kw in node.keywords
        ):
            found.append(f"torch.load without weights_only=True at line {node.lineno}")
        if (
            name.startswith("subprocess.")
            and node.args
            and isinstance(node.args[0], (ast.Constant, ast.JoinedStr))
        ):
            found.append(f"{name} with a command string at line {node.lineno}")
    return found


def test_no_shell_no_eval_no_unsafe_unpickling_anywhere():
    found = {}
    for path in _python_files():
        calls = _dangerous_calls(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        if calls:
            found[str(path.relative_to(ROOT))] = calls
    assert found == {}


def test_the_check_catches_what_it_looks_for():
    code = (
        "import os, subprocess, torch\neval(x)\nos.system(c)\nsubprocess.run(c, shell=True)\n"
        "subprocess.run('ls -l')\ntorch.load(p)\ntorch.load(p, weights_only=True)\n"
    )
    assert len(_dangerous_calls(ast.parse(code))) == 5
