"""Every check that needs no model runs before one loads, lists every problem at once, and
the dry run makes the same checks; no token shows anywhere (Hardening, round two: items
3, 12, 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.helpers import make_toy_dataset, toy_settings
from trainer.__main__ import main
from trainer.config import config_from_dict
from trainer.run.train import Run, train_with_events

TOKEN = "hf_TopSecret0123456789"
WANDB = "wandbSecretValue123"


def _preset(tmp_path: Path, model: Path, data: Path, **over) -> Path:
    path = tmp_path / "preset.json"
    path.write_text(json.dumps(toy_settings(model, data, tmp_path / "out", **over)), encoding="utf-8")
    return path


def _run_error(values: dict) -> tuple[int, str, list]:
    """(exit code, the error event's message, the events) of a run in this process."""
    cfg, _ = config_from_dict(values)
    events: list = []
    code = train_with_events(cfg, events.append)
    errors = [e.data["message"] for e in events if e.kind == "error"]
    return code, "\n".join(errors), events


@pytest.fixture
def no_model_loads(monkeypatch):
    """Fail the test if a run gets as far as loading a model."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the problems were reported")

    monkeypatch.setattr("trainer.models.load_models", refuse)


# ---- item 14: --dry-run refuses what the run refuses, in the same words ------------------------
def _lora_file(path: Path) -> Path:
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 8)}, str(path))
    return path


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("missing model", "does not exist"),
        ("empty model", "is empty (0 bytes)"),
        ("a LoRA as the model", "is a LoRA (or LyCORIS) file, not a base model"),
        ("output inside the images", "is inside the train_data_dir folder"),
    ],
)
def test_the_dry_run_refuses_what_the_run_refuses(tmp_path, capsys, no_model_loads, case, words):
    data = make_toy_dataset(tmp_path / "data", n=2)
    model = tmp_path / "model.safetensors"
    over = {}
    if case == "empty model":
        model.write_bytes(b"")
    elif case == "a LoRA as the model":
        _lora_file(model)
    elif case == "output inside the images":
        model = tmp_path / "model"
        (model / "unet").mkdir(parents=True)  # not a model either; the output is what is looked at
        over["output_dir"] = str(data / "1_toy" / "out")
    values = toy_settings(model, data, tmp_path / "out", **over)
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps(values), encoding="utf-8")
    assert main(["--config", str(preset), "--dry-run"]) == 2
    dry = capsys.readouterr().err
    code, message, _ = _run_error(values)
    assert code == 2 and words in message and words in dry
    problem = next(line for line in message.splitlines() if words in line)
    assert problem in dry  # the same sentence
    assert "Traceback" not in dry


# ---- item 12: every problem at once, all before a model loads ----------------------------------
def test_a_bad_output_name_no_longer_hides_a_missing_model_and_dataset(tmp_path, capsys):
    values = toy_settings(tmp_path / "no-model", tmp_path / "no-data", tmp_path / "out", output_name="a/b")
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps(values), encoding="utf-8")
    for argv in (["--dry-run"], []):
        assert main(["--config", str(preset), *argv]) == 2
        err = capsys.readouterr().err
        assert "output_name: 'a/b' must be a plain file name" in err
        assert f"pretrained_model_name_or_path: {tmp_path / 'no-model'} does not exist" in err
        assert f"train_data_dir: The image folder '{tmp_path / 'no-data'}' does not exist" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ("betas=oops", "'betas=oops' does not fit AdamW"),
        ("betas=0.9", "'betas=0.9' does not fit AdamW"),
        (
            "weight_decay=0.01 foo=1",
            "foo is not an argument of AdamW (torch.optim.adamw.AdamW takes lr, betas",
        ),
    ],
)
def test_bad_optimizer_arguments_are_found_before_the_model_loads(tmp_path, no_model_loads, args, words):
    data = make_toy_dataset(tmp_path / "data", n=2)
    code, message, events = _run_error(
        toy_settings(tmp_path / "m", data, tmp_path / "out", optimizer_args=args)
    )
    assert code == 2 and f"optimizer_args: {words}" in message
    assert "started" not in [e.kind for e in events]
    assert "pretrained_model_name_or_path" in message  # listed together with the other problems


def test_good_optimizer_arguments_pass(tmp_path):
    from trainer.optim.args_check import optimizer_args_problems

    assert optimizer_args_problems("AdamW", "weight_decay=0.01 betas=0.9,0.99", 1e-4) == []
    assert (
        optimizer_args_problems(
            "Adafactor", "scale_parameter=False relative_step=False warmup_init=False", 1e-4
        )
        == []
    )
    assert optimizer_args_problems("SGDNesterov", "weight_decay=0.01", 1e-3) == []


def test_config_dataset_preflight_and_resume_problems_come_together(tmp_path, no_model_loads, capsys):
    values = toy_settings(
        tmp_path / "no-model",
        tmp_path / "no-data",
        tmp_path / "out",
        learning_rate=-1,
        optimizer_args="betas=oops",
        resume=str(tmp_path / "no-state"),
    )
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps(values), encoding="utf-8")
    assert main(["--config", str(preset)]) == 2
    err = capsys.readouterr().err
    for key in (
        "learning_rate",
        "train_data_dir",
        "pretrained_model_name_or_path",
        "optimizer_args",
        "resume",
    ):
        assert f"- {key}: " in err, key


# ---- item 3: a token in Additional parameters never shows ------------------------------------
KOHYA_TOKENS = {
    "use_8bit_adam": False,  # a Kohya GUI file
    "additional_parameters": f"--huggingface_token={TOKEN} --wandb_api_key={WANDB}",
}


def _leaky_note(*args, **kwargs) -> list[dict]:
    return [{"code": "text", "text": f"a note that quotes the token {TOKEN} and --wandb_api_key={WANDB}"}]


def test_the_dry_run_plan_shows_no_token_in_text_or_json(tiny_model, tmp_path, capsys, monkeypatch):
    data = make_toy_dataset(tmp_path / "data", n=2)
    preset = _preset(tmp_path, tiny_model("sd15"), data, **KOHYA_TOKENS)
    monkeypatch.setattr("trainer.plan.training_plan._advice", _leaky_note)
    for argv in ([], ["--json"]):
        assert main(["--config", str(preset), "--dry-run", *argv]) == 0
        out = capsys.readouterr().out
        assert "a note that quotes the token ***" in out and "--wandb_api_key=***" in out
        assert TOKEN not in out and WANDB not in out


def test_the_events_and_the_log_of_a_run_show_no_token(tiny_model, tmp_path, capsys, monkeypatch):
    data = make_toy_dataset(tmp_path / "data", n=2)
    preset = _preset(
        tmp_path, tiny_model("sd15"), data, epoch=2, logging_dir=str(tmp_path / "logs"), **KOHYA_TOKENS
    )
    monkeypatch.setattr("trainer.run.setup.apply_speed_options", _leaky_note)
    original = Run.step_loss

    def leaky(self, batch, generator):  # an error that quotes both, at step 2
        if self.keeper.position.step >= 1:
            raise RuntimeError(f"401 for token {TOKEN} (--wandb_api_key={WANDB})")
        return original(self, batch, generator)

    monkeypatch.setattr(Run, "step_loss", leaky)
    assert main(["--config", str(preset), "--events", "jsonl"]) == 1
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    kinds = [e["kind"] for e in events]
    assert {"plan", "log", "step", "error"} <= set(kinds)
    shown = captured.out + captured.err
    assert TOKEN not in shown and WANDB not in shown and "the token ***" in shown
    log = (tmp_path / "logs" / "toy.log").read_text(encoding="utf-8")
    assert "401 for token ***" in log and TOKEN not in log and WANDB not in log


def test_a_fine_model_is_not_a_warning(tiny_model, tmp_path, monkeypatch):
    """Which model was found is no warning (the log said "warning: SD 1.x ..." for every model);
    an SD2 file whose prediction type cannot be known still is, with its advice."""
    import trainer.models
    from trainer.models import ModelInfo
    from trainer.run.preflight import run_preflight

    data = make_toy_dataset(tmp_path / "data", n=2)
    cfg, _ = config_from_dict(toy_settings(tiny_model("sd15"), data, tmp_path / "out"))
    problems, warnings = run_preflight(cfg)
    assert not problems and not any("diffusers model" in w or "SD 1.x" in w for w in warnings)

    message = "SD 2.x single-file checkpoint x. v-prediction cannot be read from the weights"
    sd2 = ModelInfo("sd2", False, "single-file", message, "x", "", 0)
    monkeypatch.setattr(trainer.models, "detect_model", lambda path: sd2)
    _, warnings = run_preflight(cfg)
    assert message in warnings
