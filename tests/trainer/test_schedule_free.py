"""A schedule-free run on the tiny SD1.x model: its saves and samples hold the averaged
weights, and a resume from its saved state is the run that never stopped.

Run A (AdamWScheduleFree, 4 images, batch 2, 2 epochs, a save and a sample each epoch,
the training state with every save) is watched: before every save and sample the
optimizer must be in eval mode (the average in the LoRA), and back in train mode after.
Resuming A's epoch-1 state must give A's later losses and A's final file.
"""

from __future__ import annotations

import pytest
import schedulefree

from tests.helpers import (
    assert_same_tensors,
    load_tensors,
    make_toy_dataset,
    resumable_settings,
    train_with_losses,
)
from trainer.run.saving import LoRASaver
from trainer.sampling.preview import Sampler

SCHEDULE_FREE = {
    "optimizer": "AdamWScheduleFree",
    "learning_rate": 1e-2,
    "unet_lr": 1e-2,
    "text_encoder_lr": 1e-3,
    "lr_scheduler": "constant",
    "sample_prompts": "toy, red square --w 64 --h 64 --s 1",
    "sample_every_n_epochs": 1,
}


def watched_train(values: dict) -> tuple[tuple, list[tuple[str, str, bool]]]:
    """train_with_losses(), logging ("eval" | "train" | "save" | "sample", what, train mode)."""
    log: list[tuple[str, str, bool]] = []
    seen: dict = {}
    cls = schedulefree.AdamWScheduleFree
    real_eval, real_train, real_save = cls.eval, cls.train, LoRASaver.save

    def mode() -> bool:
        return seen["optimizer"].param_groups[0]["train_mode"]

    def spy_eval(self):
        seen["optimizer"] = self
        real_eval(self)
        log.append(("eval", "", mode()))

    def spy_train(self):
        seen["optimizer"] = self
        real_train(self)
        log.append(("train", "", mode()))

    def spy_save(self, name, *args, **kwargs):
        log.append(("save", name, mode()))
        return real_save(self, name, *args, **kwargs)

    def spy_sample(self, step, epoch=None):
        log.append(("sample", f"step {step}", mode()))  # no pictures: the tiny model's are noise

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cls, "eval", spy_eval)
        mp.setattr(cls, "train", spy_train)
        mp.setattr(LoRASaver, "save", spy_save)
        mp.setattr(Sampler, "sample", spy_sample)
        result = train_with_losses(values)
    return result, log


@pytest.fixture(scope="module")
def run_a(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schedule_free")
    data = make_toy_dataset(tmp / "data", n=4, size=64)
    model = tiny_model("sd15")
    result, log = watched_train(resumable_settings(model, data, tmp / "a", **SCHEDULE_FREE))
    return {"tmp": tmp, "data": data, "model": model, "result": result, "log": log}


def test_every_save_and_sample_reads_the_averaged_weights_then_training_goes_on(run_a):
    code, losses, events = run_a["result"]
    assert code == 0, [e.data for e in events if e.kind == "error"]
    assert sorted(losses) == [1, 2, 3, 4]
    log = run_a["log"]
    assert log[0][0] == "train"  # made ready to step, as sd-scripts does
    outputs = [(kind, what) for kind, what, _ in log if kind in ("save", "sample")]
    assert outputs == [
        ("save", "toy-000001"),
        ("sample", "step 2"),
        ("sample", "step 4"),
        ("save", "toy"),
    ]  # the last epoch's sample, then the final file
    for i, (kind, what, train_mode) in enumerate(log):
        if kind in ("save", "sample"):
            assert train_mode is False, f"{kind} {what} read the training point, not the average"
            assert log[i - 1][0] == "eval" and log[i + 1][0] == "train", (kind, what)
    assert [kind for kind, *_ in log].count("eval") == 4


def test_a_resumed_schedule_free_run_repeats_the_later_steps_and_the_final_file(run_a):
    tmp = run_a["tmp"]
    out = tmp / "resumed"
    values = resumable_settings(
        run_a["model"], run_a["data"], out, resume=str(tmp / "a" / "toy-000001-state"), **SCHEDULE_FREE
    )
    code, losses, events = train_with_losses(values)
    assert code == 0, [e.data for e in events if e.kind == "error"]
    reference = run_a["result"][1]
    assert sorted(losses) == [3, 4]
    for step, loss in losses.items():
        assert loss == pytest.approx(reference[step], abs=1e-6), step
    assert_same_tensors(load_tensors(out / "toy.safetensors"), load_tensors(tmp / "a" / "toy.safetensors"))
    assert_same_tensors(
        load_tensors(out / "toy-state" / "lora.safetensors"),
        load_tensors(tmp / "a" / "toy-state" / "lora.safetensors"),
    )
