"""Resume: a run continued from its saved training state is the run that never stopped.

Tiny SD1.x model, 4 images of 64 px, batch 2: 2 steps per epoch, 2 epochs. Run A never
stops and saves a state with every file; run B is stopped by the user after step 3 (mid
epoch 2). Resuming A's epoch-1 state and B's stopped state must give A's loss at every
later step and A's final file.
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers import (
    assert_same_tensors,
    load_tensors,
    make_toy_dataset,
    resumable_settings,
    train_with_losses,
)
from trainer.__main__ import main
from trainer.config import config_from_dict
from trainer.data.resolved import resolve_dataset
from trainer.run.state import Position, check_resume, read_state_info, state_dir_for
from trainer.run.train import train_with_events


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    data = make_toy_dataset(tmp / "data", n=4, size=64)
    model = tiny_model("sd15")
    a = train_with_losses(resumable_settings(model, data, tmp / "a"))
    b = train_with_losses(resumable_settings(model, data, tmp / "b"), stop_after=3)
    return {"tmp": tmp, "data": data, "model": model, "a": a, "b": b}


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
    values = resumable_settings(runs["model"], runs["data"], out, resume=str(tmp / state))
    code, losses, events = train_with_losses(values)
    assert code == 0, [e.data for e in events if e.kind == "error"]
    reference = runs["a"][1]
    assert sorted(losses) == list(range(first, 5))
    for step, loss in losses.items():
        assert loss == pytest.approx(reference[step], abs=1e-6), step
    assert_same_tensors(load_tensors(out / "toy.safetensors"), load_tensors(tmp / "a" / "toy.safetensors"))
    assert_same_tensors(
        load_tensors(out / "toy-state" / "lora.safetensors"),
        load_tensors(tmp / "a" / "toy-state" / "lora.safetensors"),
    )
    assert any("Resumed from" in e.data.get("message", "") for e in events if e.kind == "log")


def test_a_state_that_does_not_match_is_refused_naming_the_difference(runs, tmp_path):
    tmp = runs["tmp"]
    state = tmp / "a" / "toy-000001-state"
    (tmp_path / "data" / "1_toy").mkdir(parents=True)
    for i in range(3):  # one image fewer
        src = runs["data"] / "1_toy" / f"img{i}.png"
        (tmp_path / "data" / "1_toy" / src.name).write_bytes(src.read_bytes())
    values = resumable_settings(
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
    values = resumable_settings(runs["model"], runs["data"], tmp_path / "out", seed=8)
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

    from trainer.run.rng_state import capture_rng, restore_rng

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
    code, full, events = train_with_losses(
        resumable_settings(runs["model"], runs["data"], tmp / "te-a", **over)
    )
    assert code == 0, [e.data for e in events if e.kind == "error"]
    assert (tmp / "te-a" / "toy-000001-state").is_dir()
    out = tmp / "te-b"
    code, losses, events = train_with_losses(
        resumable_settings(
            runs["model"], runs["data"], out, resume=str(tmp / "te-a" / "toy-000001-state"), **over
        )
    )
    assert code == 0, [e.data for e in events if e.kind == "error"]
    for step, loss in losses.items():
        assert loss == pytest.approx(full[step], abs=1e-6), step
    assert_same_tensors(load_tensors(out / "toy.safetensors"), load_tensors(tmp / "te-a" / "toy.safetensors"))
