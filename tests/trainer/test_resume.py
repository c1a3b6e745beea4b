"""Resume: a run continued from its saved training state is the run that never stopped.

Tiny SD1.x model, 4 images of 64 px, batch 2: 2 steps per epoch, 2 epochs. Run A never
stops and saves a state with every file; run B is stopped by the user after step 3 (mid
epoch 2). Resuming A's epoch-1 state and B's stopped state must give A's loss at every
later step and A's final file.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer.test_train_e2e import make_toy_dataset
from trainer.__main__ import main
from trainer.config import config_from_dict
from trainer.data.resolved import resolve_dataset
from trainer.run.state import Position, check_resume, read_state_info, state_dir_for
from trainer.run.train import Run, train_with_events


def settings(model: Path, data: Path, out: Path, **over) -> dict:
    values = {
        "pretrained_model_name_or_path": str(model),
        "train_data_dir": str(data),
        "output_dir": str(out),
        "output_name": "toy",
        "mixed_precision": "no",
        "optimizer": "AdamW",
        "learning_rate": 1e-2,
        "unet_lr": 1e-2,
        "text_encoder_lr": 1e-3,
        "lr_scheduler": "cosine",
        "lr_warmup": 0,
        "train_batch_size": 2,
        "epoch": 2,
        "save_every_n_epochs": 1,
        "max_resolution": "64,64",
        "min_bucket_reso": 64,
        "max_bucket_reso": 128,
        "bucket_no_upscale": False,
        "network_dim": 4,
        "network_alpha": 4,
        "network_dropout": 0.1,
        "save_precision": "float",
        "seed": 7,
        "save_state": True,
        "num_cpu_threads_per_process": 1,
    }
    values.update(over)
    return values


def train(values: dict, stop_after: int | None = None) -> tuple[int, dict[int, float], list]:
    """Train in this process; returns (exit code, loss of each step, events)."""
    cfg, _ = config_from_dict(values)
    losses: dict[int, float] = {}
    events: list = []
    stop = threading.Event()
    original = Run._step_loss

    def spy(self, batch, generator):
        loss = original(self, batch, generator)
        step = self.keeper.position.step + 1
        losses[step] = float(loss.detach())
        if stop_after is not None and step >= stop_after:
            stop.set()
        return loss

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Run, "_step_loss", spy)
        code = train_with_events(cfg, events.append, stop)
    return code, losses, events


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    data = make_toy_dataset(tmp / "data", n=4, size=64)
    model = tiny_model("sd15")
    a = train(settings(model, data, tmp / "a"))
    b = train(settings(model, data, tmp / "b"), stop_after=3)
    return {"tmp": tmp, "data": data, "model": model, "a": a, "b": b}


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same_tensors(x: dict, y: dict) -> None:
    assert x.keys() == y.keys()
    for key, value in x.items():
        torch.testing.assert_close(value, y[key], rtol=0, atol=1e-6, msg=key)


def test_states_are_written_beside_each_lora_with_sd_scripts_names(runs):
    out = runs["tmp"] / "a"
    code, losses, _ = runs["a"]
    assert code == 0 and sorted(losses) == [1, 2, 3, 4]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["toy-000001-state", "toy-000001.safetensors", "toy-state", "toy.safetensors"]
    assert state_dir_for(out / "toy-000001.safetensors") == out / "toy-000001-state"
    info = read_state_info(out / "toy-000001-state")
    assert info["position"] == {"epoch": 2, "batches_done": 0, "step": 2}
    assert info["lora_file"] == "toy-000001.safetensors"
    assert info["fingerprint"]["dataset"] == [[f"1_toy/img{i}.png", 1] for i in range(4)]
    assert {"state.json", "lora.safetensors", "training.pt"} <= {
        p.name for p in (out / "toy-000001-state").iterdir()
    }


def test_stop_saves_the_lora_and_a_mid_epoch_state(runs):
    out = runs["tmp"] / "b"
    code, losses, events = runs["b"]
    assert code == 0
    assert [e.data["step"] for e in events if e.kind == "stopped"] == [3]
    assert (out / "toy-stopped-3.safetensors").is_file()
    info = read_state_info(out / "toy-stopped-3-state")
    assert info["position"] == {"epoch": 2, "batches_done": 1, "step": 3}
    # the same seed gives the same steps, stopped or not
    assert losses == {s: runs["a"][1][s] for s in (1, 2, 3)}


@pytest.mark.parametrize("state, first", [("a/toy-000001-state", 3), ("b/toy-stopped-3-state", 4)])
def test_resumed_run_repeats_every_later_step_and_the_final_file(runs, state, first):
    tmp = runs["tmp"]
    out = tmp / f"resumed-{first}"
    values = settings(runs["model"], runs["data"], out, resume=str(tmp / state))
    code, losses, events = train(values)
    assert code == 0, [e.data for e in events if e.kind == "error"]
    reference = runs["a"][1]
    assert sorted(losses) == list(range(first, 5))
    for step, loss in losses.items():
        assert loss == pytest.approx(reference[step], abs=1e-6), step
    assert_same_tensors(_tensors(out / "toy.safetensors"), _tensors(tmp / "a" / "toy.safetensors"))
    assert_same_tensors(
        _tensors(out / "toy-state" / "lora.safetensors"),
        _tensors(tmp / "a" / "toy-state" / "lora.safetensors"),
    )
    assert any("Resumed from" in e.data.get("message", "") for e in events if e.kind == "log")


def test_a_state_that_does_not_match_is_refused_naming_the_difference(runs, tmp_path):
    tmp = runs["tmp"]
    state = tmp / "a" / "toy-000001-state"
    (tmp_path / "data" / "1_toy").mkdir(parents=True)
    for i in range(3):  # one image fewer
        src = runs["data"] / "1_toy" / f"img{i}.png"
        (tmp_path / "data" / "1_toy" / src.name).write_bytes(src.read_bytes())
    values = settings(
        runs["model"],
        tmp_path / "data",
        tmp_path / "out",
        resume=str(state),
        network_dim=8,
        train_batch_size=1,
    )
    cfg, _ = config_from_dict(values)
    problems, _ = check_resume(cfg, resolve_dataset(cfg), total_steps=100)
    text = "\n".join(str(p) for p in problems)
    assert all(p.key == "resume" for p in problems)
    assert "network_dim: the state was trained with 4, this config has 8" in text
    assert "train_batch_size" in text
    assert "1 removed (1_toy/img3.png)" in text

    events: list = []
    assert train_with_events(cfg, events.append) == 2
    assert [e.kind for e in events] == ["error"]  # refused before any model loads
    assert "network_dim" in events[0].data["message"]


def test_cli_resume_flag_and_bad_state_folders(runs, tmp_path, capsys):
    values = settings(runs["model"], runs["data"], tmp_path / "out", seed=8)
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps(values), encoding="utf-8")
    lora = runs["tmp"] / "a" / "toy.safetensors"
    assert main(["--config", str(preset), "--resume", str(lora), "--events", "jsonl"]) == 2
    out = capsys.readouterr().out
    assert "is a file; choose the training-state folder (its state is" in out
    assert main(["--config", str(preset), "--resume", str(tmp_path), "--events", "jsonl"]) == 2
    assert "is not a training-state folder" in capsys.readouterr().out
    # a finished state has nothing left to train with the same epochs
    cfg, _ = config_from_dict({**values, "resume": str(runs["tmp"] / "a" / "toy-state")})
    problems, _ = check_resume(cfg, resolve_dataset(cfg), total_steps=4)
    assert problems and "nothing is left to train" in problems[0].message
    problems, notes = check_resume(cfg, resolve_dataset(cfg), total_steps=6)
    assert not problems and any("seed was 7" in n for n in notes)


def test_position_defaults_to_the_start():
    assert Position() == Position(epoch=1, batches_done=0, step=0)


def test_every_random_generator_comes_back():
    import random

    import numpy as np

    from trainer.run.state import capture_rng, restore_rng

    gen = torch.Generator().manual_seed(1)

    def draw():
        return (
            random.random(),
            float(np.random.rand()),
            float(torch.rand(())),
            float(torch.rand((), generator=gen)),
        )

    saved = capture_rng(gen)
    first = draw()
    assert restore_rng(saved, gen) is True
    assert draw() == first
    assert restore_rng({**saved, "generator_device": "cuda"}, gen) is False  # noise reseeded


def test_a_run_whose_text_encoder_stopped_saves_and_resumes_exactly(runs):
    """stop_text_encoder_training with save_state: the state saved after the stop is written
    (the frozen text encoder keeps its optimizer state) and resumes to the same file."""
    tmp = runs["tmp"]
    over = {"stop_text_encoder_training": 25}  # 4 steps: the text encoder stops after step 1
    code, full, events = train(settings(runs["model"], runs["data"], tmp / "te-a", **over))
    assert code == 0, [e.data for e in events if e.kind == "error"]
    assert (tmp / "te-a" / "toy-000001-state").is_dir()
    out = tmp / "te-b"
    code, losses, events = train(
        settings(runs["model"], runs["data"], out, resume=str(tmp / "te-a" / "toy-000001-state"), **over)
    )
    assert code == 0, [e.data for e in events if e.kind == "error"]
    for step, loss in losses.items():
        assert loss == pytest.approx(full[step], abs=1e-6), step
    assert_same_tensors(_tensors(out / "toy.safetensors"), _tensors(tmp / "te-a" / "toy.safetensors"))
