"""The app trains one run after another in its own process: a second run may change the
precision, and a finished run leaves nothing behind."""

from __future__ import annotations

import gc
import weakref

from tests.helpers import make_toy_dataset, toy_settings
from trainer.config import config_from_dict
from trainer.run.train import Run, train_with_events


def test_two_runs_in_one_process_with_different_mixed_precision(tiny_model, tmp_path):
    data = make_toy_dataset(tmp_path / "data", n=2)
    for precision in ("no", "bf16", "no"):
        values = toy_settings(
            tiny_model("sd15"),
            data,
            tmp_path / precision,
            mixed_precision=precision,
            epoch=1,
            max_train_steps=1,
        )
        cfg, _ = config_from_dict(values)
        events: list = []
        assert train_with_events(cfg, events.append) == 0, [e.data for e in events if e.kind == "error"]
        assert (tmp_path / precision / "toy.safetensors").is_file()


def test_nothing_of_a_finished_run_stays_reachable(tiny_model, tmp_path, monkeypatch):
    """Without the cycle collector: the run, its models and network are freed by reference
    counting as soon as train_with_events returns."""
    refs: list[weakref.ref] = []
    original = Run.execute

    def execute(self):
        refs.append(weakref.ref(self))
        try:
            return original(self)
        finally:
            refs.extend(weakref.ref(m) for m in (self.models.unet, self.network, self.optimizer))

    monkeypatch.setattr(Run, "execute", execute)
    data = make_toy_dataset(tmp_path / "data", n=2)
    values = toy_settings(
        tiny_model("sd15"),
        data,
        tmp_path / "out",
        epoch=1,
        max_train_steps=2,
        sample_prompts="toy --s 2",
        sample_every_n_steps=1,
        logging_dir=str(tmp_path / "logs"),
    )
    cfg, _ = config_from_dict(values)
    gc.collect()
    gc.disable()
    try:
        assert train_with_events(cfg, lambda event: None) == 0
        alive = [r() for r in refs if r() is not None]
    finally:
        gc.enable()
    assert len(refs) == 4 and not alive, [type(a).__name__ for a in alive]


def test_a_step_the_fp16_scaler_skipped_does_not_advance_the_lr_schedule():
    from types import SimpleNamespace

    from trainer.config import TrainingConfig

    class Optimizer:
        step_was_skipped = True

        def step(self):
            pass

        def zero_grad(self, set_to_none=True):
            pass

    class Scheduler:
        steps = 0

        def step(self):
            self.steps += 1

    run = SimpleNamespace(
        _sync_gradients=lambda: None,
        cfg=TrainingConfig(max_grad_norm=0),
        optimizer=Optimizer(),
        scheduler=Scheduler(),
    )
    Run.optimizer_step(run)
    assert run.scheduler.steps == 0
    run.optimizer.step_was_skipped = False
    Run.optimizer_step(run)
    assert run.scheduler.steps == 1
