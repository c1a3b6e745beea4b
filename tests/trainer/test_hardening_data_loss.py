"""A run whose images vanish fails instead of "training" on nothing; a batch with no image
takes no step (Hardening, round two: item 7)."""

from __future__ import annotations

import shutil
import threading

from tests.helpers import make_toy_dataset, toy_settings
from trainer.config import config_from_dict
from trainer.run.data import RunData
from trainer.run.train import Run, train_with_events


def _run(values: dict, on_first_step=None) -> tuple[int, list, list[tuple[int, float]]]:
    """(exit code, events, (epoch, loss) of every trained batch); `on_first_step(run, batch)`
    runs once, inside the first training step."""
    cfg, _ = config_from_dict(values)
    events: list = []
    losses: list[tuple[int, float]] = []
    original = Run.step_loss

    def spy(self, batch, generator):
        if on_first_step is not None and not losses:
            on_first_step(self, batch)
        loss = original(self, batch, generator)
        losses.append((self.keeper.position.epoch, float(loss.detach())))
        return loss

    Run.step_loss = spy
    try:
        code = train_with_events(cfg, events.append, threading.Event())
    finally:
        Run.step_loss = original
    return code, events, losses


def test_a_dataset_deleted_after_the_first_step_fails_the_run(tiny_model, tmp_path):
    data = make_toy_dataset(tmp_path / "data", n=4)
    values = toy_settings(tiny_model("sd15"), data, tmp_path / "out", cache_latents=False, epoch=3)
    code, events, losses = _run(values, lambda run, batch: shutil.rmtree(data))
    assert code == 1
    # epoch 1: its first batch trained, its second (half the epoch) gone; epoch 2: nothing readable
    error = next(e.data["message"] for e in events if e.kind == "error")
    assert "Most of the training images could not be read in epoch 2: 4 of its 4" in error
    assert "img" in error
    assert "finished" not in [e.kind for e in events]
    epochs = [e.data for e in events if e.kind == "epoch"]
    assert [(e["epoch"], e["avg_loss"]) for e in epochs] == [(1, losses[0][1])]  # no 0.0 epoch
    assert len(losses) == 1
    assert not (tmp_path / "out" / "toy.safetensors").exists()
    assert any(e.kind == "warning" and "during training" in e.data["message"] for e in events)


def test_a_batch_whose_images_are_gone_takes_no_step_and_adds_no_loss(tiny_model, tmp_path):
    data = make_toy_dataset(tmp_path / "data", n=2)
    values = toy_settings(tiny_model("sd15"), data, tmp_path / "out", cache_latents=False, train_batch_size=1)

    def delete_the_other(run, batch):  # half of each epoch is gone: the run goes on
        kept = run.dataset.entries[batch["indices"][0]].item.path
        for path in (data / "1_toy").glob("*.png"):
            if path != kept:
                path.unlink()

    code, events, losses = _run(values, delete_the_other)
    assert code == 0
    assert next(e for e in events if e.kind == "finished").data["steps"] == 3  # 1 per epoch, not 2
    for event in (e for e in events if e.kind == "epoch"):
        trained = [loss for epoch, loss in losses if epoch == event.data["epoch"]]
        assert len(trained) == 1 and event.data["avg_loss"] == trained[0]  # no 0.0 averaged in


def test_an_image_that_fails_while_latents_are_cached_is_left_out(tiny_model, tmp_path, monkeypatch):
    data = make_toy_dataset(tmp_path / "data", n=4)
    values = toy_settings(tiny_model("sd15"), data, tmp_path / "out", cache_latents=True, epoch=1)
    original = RunData._cache_latents

    def cache(self):
        (data / "1_toy" / "img0.png").unlink()  # gone after the scan, before its latent is made
        return original(self)

    monkeypatch.setattr(RunData, "_cache_latents", cache)
    code, events, losses = _run(values)
    assert code == 0, [e.data for e in events if e.kind == "error"]
    assert any(e.kind == "warning" and "img0.png" in e.data["message"] for e in events)
    assert len(losses) == 2 and (tmp_path / "out" / "toy.safetensors").is_file()
