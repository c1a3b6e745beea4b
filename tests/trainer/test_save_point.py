"""One save of a run (trainer.run.save_point): the loss is checked before anything is
written, and older files are pruned only once the new one is on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.config import TrainingConfig
from trainer.plan.saves import SaveSchedule
from trainer.run.guards import LossGuard, TrainingError
from trainer.run.save_point import SaveParts, save_point
from trainer.run.state_keeper import StateKeeper, TrainingObjects


class FakeLoRA:
    """Stands in for LoRASaver: writes `<name>.safetensors`, or fails as a full disk does."""

    def __init__(self, folder: Path, fail: bool = False):
        self.folder, self.fail, self.saved = folder, fail, []

    def save(self, name, epoch, step, final=False):
        if self.fail:
            raise OSError(28, "No space left on device")
        self.saved.append(name)
        (self.folder / f"{name}.safetensors").write_bytes(b"x")
        return self.folder / f"{name}.safetensors"


def parts(tmp_path: Path, lora: FakeLoRA, guard: LossGuard | None = None, events=None) -> SaveParts:
    cfg = TrainingConfig.model_construct(output_dir=str(tmp_path), output_name="toy", save_last_n_epochs=1)
    network = torch.nn.Linear(2, 2)
    training = TrainingObjects(network, torch.optim.SGD(network.parameters(), lr=0.1), None, None)
    return SaveParts(
        cfg,
        guard or LossGuard(cfg),
        training,
        lora,
        StateKeeper(cfg, None, total_steps=10),
        num_processes=1,
        is_main=True,
        emit=(events if events is not None else []).append,
    )


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_the_older_file_goes_only_after_the_new_one_is_written(tmp_path):
    (tmp_path / "toy-000001.safetensors").write_bytes(b"x")
    schedule = SaveSchedule(parts(tmp_path, FakeLoRA(tmp_path)).cfg, total_steps=10, epochs=5)
    point = schedule.after_epoch(2, 4)
    with pytest.raises(OSError):
        save_point(parts(tmp_path, FakeLoRA(tmp_path, fail=True)), point)
    assert names(tmp_path) == ["toy-000001.safetensors"]
    events: list = []
    save_point(parts(tmp_path, FakeLoRA(tmp_path), events=events), point)
    assert names(tmp_path) == ["toy-000002.safetensors"]
    assert [e.data["message"] for e in events] == [
        "removed the older intermediate file toy-000001.safetensors"
    ]


def test_nothing_is_written_after_a_non_finite_loss(tmp_path):
    lora = FakeLoRA(tmp_path)
    p = parts(tmp_path, lora)
    guard = LossGuard(p.cfg, sync_each_step=False)  # as on a GPU: read at the save
    guard.observe(torch.tensor(float("nan")), 3)
    with pytest.raises(TrainingError, match="step 3"):
        save_point(parts(tmp_path, lora, guard), SaveSchedule(p.cfg, total_steps=10, epochs=5).final(3))
    assert lora.saved == [] and names(tmp_path) == []
