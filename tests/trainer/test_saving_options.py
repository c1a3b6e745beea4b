"""Step saves, pruning of older saves and training states, TensorBoard logs and the metadata
a user types."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from safetensors import safe_open

from tests.helpers import make_toy_dataset, write_preset
from trainer.config import FIELDS, TrainingConfig, config_from_dict
from trainer.network.lora_file import build_metadata
from trainer.plan.saves import (
    SaveSchedule,
    prune_epoch_files,
    prune_epoch_states,
    prune_older,
    prune_step_files,
    prune_step_states,
    step_saves,
)


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---- names and pruning ----------------------------------------------------------------------
def test_step_save_names_follow_sd_scripts():
    assert step_saves("toy", 100, 350) == [
        "toy-step00000100.safetensors",
        "toy-step00000200.safetensors",
        "toy-step00000300.safetensors",
    ]
    assert step_saves("toy", 100, 300)[-1] == "toy-step00000200.safetensors"  # the last is the final
    assert step_saves("toy", 0, 300) == []


def test_save_last_n_epochs_keeps_the_newest_n_and_never_the_final_or_other_files(tmp_path):
    touch(
        tmp_path,
        *(f"toy-{e:06d}.safetensors" for e in range(1, 6)),
        "toy.safetensors",
        "toy-000009.safetensors",
        "toyx-000001.safetensors",
        "toy-step00000001.safetensors",
    )
    removed = prune_epoch_files(tmp_path, "toy", current_epoch=5, keep=2)
    assert sorted(p.name for p in removed) == [f"toy-{e:06d}.safetensors" for e in (1, 2, 3)]
    assert names(tmp_path) == [
        "toy-000004.safetensors",
        "toy-000005.safetensors",
        "toy-000009.safetensors",  # a later epoch of an earlier run
        "toy-step00000001.safetensors",
        "toy.safetensors",
        "toyx-000001.safetensors",
    ]
    assert prune_epoch_files(tmp_path, "toy", current_epoch=5, keep=0) == []


def test_save_last_n_steps_keeps_the_files_of_the_last_n_steps(tmp_path):
    touch(
        tmp_path,
        *(f"toy-step{s:08d}.safetensors" for s in (100, 200, 300, 400, 500)),
        "toy.safetensors",
        "toy-000001.safetensors",
    )
    prune_step_files(tmp_path, "toy", current_step=500, window=300)
    assert names(tmp_path) == ["toy-000001.safetensors"] + [
        f"toy-step{s:08d}.safetensors" for s in (200, 300, 400, 500)
    ] + ["toy.safetensors"]


class FakeSaver:
    def __init__(self, folder: Path, fail: bool = False):
        self.folder, self.fail = folder, fail

    def save(self, name, epoch, step, final=False):
        if self.fail:
            raise OSError(28, "No space left on device")
        touch(self.folder, f"{name}.safetensors")
        return self.folder / f"{name}.safetensors"


def settings(tmp_path, **over):
    values = {
        "output_dir": str(tmp_path),
        "output_name": "toy",
        "save_every_n_epochs": 1,
        "save_every_n_steps": 1,
        "save_last_n_epochs": 1,
        "save_last_n_steps": 1,
    }
    return SimpleNamespace(**{**values, **over})


def test_old_files_are_pruned_only_after_the_new_one_is_written(tmp_path):
    touch(tmp_path, "toy-000001.safetensors", "toy-step00000001.safetensors")
    cfg = TrainingConfig.model_construct(**vars(settings(tmp_path)))
    saves = SaveSchedule(cfg, total_steps=10, epochs=5)
    for point in (saves.after_epoch(2, 2), saves.after_step(5, 2)):
        with pytest.raises(OSError):
            FakeSaver(tmp_path, fail=True).save(point.name, point.epoch, point.step)
            prune_older(cfg, point)
    assert names(tmp_path) == ["toy-000001.safetensors", "toy-step00000001.safetensors"]

    for point in (saves.after_epoch(2, 2), saves.after_step(5, 2)):
        FakeSaver(tmp_path).save(point.name, point.epoch, point.step)
        prune_older(cfg, point)
    assert names(tmp_path) == ["toy-000002.safetensors", "toy-step00000005.safetensors"]
    assert saves.after_epoch(5, 10) is None and saves.after_step(10, 5) is None  # the final's turn


def test_the_plan_lists_the_step_saves(tmp_path):
    from trainer.plan.training_plan import build_plan

    data = make_toy_dataset(tmp_path / "data", n=2)
    cfg, _ = config_from_dict(
        {
            "pretrained_model_name_or_path": "unused",
            "train_data_dir": str(data),
            "output_dir": str(tmp_path / "out"),
            "output_name": "toy",
            "max_resolution": "64,64",
            "min_bucket_reso": 64,
            "train_batch_size": 1,
            "epoch": 2,
            "save_every_n_steps": "3",
            "save_every_n_epochs": 1,
            "mixed_precision": "no",
        }
    )
    assert build_plan(cfg).saves == [
        "toy-step00000003.safetensors",
        "toy-000001.safetensors",
        "toy.safetensors",
    ]


def test_the_settings_are_in_the_schema_with_kohya_names():
    for key in ("save_every_n_steps", "save_last_n_epochs", "save_last_n_steps"):
        spec = FIELDS[key]
        assert spec.tab == "Parameters" and spec.group == "Saving" and spec.default == 0
        assert spec.help and spec.help_ja and spec.label_ja
    cfg, _ = config_from_dict(
        {  # as kohya_ss writes them: numbers as text, null when unset
            "pretrained_model_name_or_path": "m",
            "train_data_dir": "d",
            "output_dir": "o",
            "save_every_n_steps": "500",
            "save_last_n_steps": None,
            "save_last_n_epochs": 3,
            "logging_dir": "logs",
            "training_comment": "hi",
            "metadata_title": "T",
        }
    )
    assert (cfg.save_every_n_steps, cfg.save_last_n_steps, cfg.save_last_n_epochs) == (500, 0, 3)
    assert (cfg.logging_dir, cfg.training_comment, cfg.metadata_title) == ("logs", "hi", "T")


# ---- training states (save_state) ------------------------------------------------------------
def make_state(folder: Path, name: str) -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "state.json").write_text("{}")


def test_old_state_folders_are_pruned_but_never_a_folder_that_is_not_a_state(tmp_path):
    for e in (1, 2, 3):
        make_state(tmp_path, f"toy-{e:06d}-state")
    (tmp_path / "toy-000000-state").mkdir()  # not ours: no state.json
    make_state(tmp_path, "toy-state")  # the final state
    removed = prune_epoch_states(tmp_path, "toy", current_epoch=3, keep=1)
    assert sorted(p.name for p in removed) == ["toy-000001-state", "toy-000002-state"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy-000000-state", "toy-000003-state", "toy-state"]
    for s in (100, 200, 300):
        make_state(tmp_path, f"toy-step{s:08d}-state")
    prune_step_states(tmp_path, "toy", current_step=300, window=150)
    assert not (tmp_path / "toy-step00000100-state").exists()
    assert (tmp_path / "toy-step00000200-state").exists()


def test_states_follow_the_file_pruning_unless_their_own_number_is_set(tmp_path):
    class Saver:
        def save(self, name, epoch, step, final=False):
            (tmp_path / f"{name}.safetensors").write_bytes(b"x")
            make_state(tmp_path, f"{name}-state")
            return tmp_path / f"{name}.safetensors"

    epochs_only = settings(tmp_path, save_every_n_steps=0, save_last_n_steps=0, save_last_n_epochs_state=2)
    logs = []
    saves = SaveSchedule(epochs_only, total_steps=10, epochs=5)
    for point in (saves.after_epoch(epoch, epoch) for epoch in (1, 2, 3)):
        Saver().save(point.name, point.epoch, point.step)
        logs += prune_older(epochs_only, point)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "toy-000002-state",
        "toy-000003-state",
        "toy-000003.safetensors",
    ]
    assert any("training state toy-000001-state" in line for line in logs)


def test_a_run_with_save_state_keeps_only_the_newest_state(tiny_model, tmp_path):
    from trainer.__main__ import main

    data = make_toy_dataset(tmp_path / "data", n=2)
    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        data,
        max_train_steps=3,
        epoch=1,
        save_every_n_epochs=1,
        save_last_n_epochs=1,
        save_state=True,
    )
    assert main(["--config", str(preset)]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "toy-000002-state",
        "toy-000002.safetensors",
        "toy-state",
        "toy.safetensors",
    ]


# ---- metadata the user types -----------------------------------------------------------------
def test_training_comment_and_metadata_fields_are_written_into_the_metadata():
    cfg = SimpleNamespace(
        training_comment="trained on my cat",
        metadata_title="Cat LoRA",
        metadata_author="me",
        metadata_description="a cat",
        metadata_license="CC-BY-4.0",
        metadata_tags="cat, pet",
        output_name="cat",
    )
    meta = build_metadata(
        cfg,
        arch="sd1",
        v_parameterization=False,
        network_args={},
        num_train_images=1,
        num_reg_images=0,
        epoch=1,
        steps=1,
        total_epochs=1,
        max_train_steps=1,
        lr_warmup_steps=0,
        bucket_info={},
        tag_frequency={},
        training_started_at=0.0,
        resolution=(512, 512),
        model_name="m",
    )
    assert meta["ss_training_comment"] == "trained on my cat"
    assert (
        meta["modelspec.title"],
        meta["modelspec.author"],
        meta["modelspec.description"],
        meta["modelspec.license"],
        meta["modelspec.tags"],
    ) == ("Cat LoRA", "me", "a cat", "CC-BY-4.0", "cat, pet")


# ---- end to end ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_with_saves(tiny_model, tmp_path_factory):
    from trainer.__main__ import main

    tmp = tmp_path_factory.mktemp("saving")
    data = make_toy_dataset(tmp / "data", n=2)
    # 2 images, batch 2: one step per epoch, so 4 steps are 4 epochs
    preset = write_preset(
        tmp,
        tiny_model("sd15"),
        data,
        max_train_steps=4,
        epoch=1,
        save_every_n_epochs=1,
        save_last_n_epochs=2,
        save_every_n_steps=1,
        save_last_n_steps=1,
        logging_dir=str(tmp / "logs"),
        training_comment="trained on toys",
        metadata_title="Toy",
        metadata_author="tester",
        metadata_description="red squares",
        metadata_license="MIT",
        metadata_tags="toy, test",
    )
    assert main(["--config", str(preset)]) == 0
    return tmp


def test_a_run_keeps_the_newest_step_and_epoch_saves_and_the_final(run_with_saves):
    out = run_with_saves / "out"
    # steps 1-3 and epochs 1-3 were saved (step/epoch 4 is the final); step 1 and epoch 1 pruned
    assert names(out) == [
        "toy-000002.safetensors",
        "toy-000003.safetensors",
        "toy-step00000002.safetensors",
        "toy-step00000003.safetensors",
        "toy.safetensors",
    ]
    with safe_open(str(out / "toy-step00000003.safetensors"), "pt") as f:
        assert f.metadata()["ss_steps"] == "3"


def test_the_final_file_carries_the_comment_and_metadata(run_with_saves):
    with safe_open(str(run_with_saves / "out" / "toy.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["ss_training_comment"] == "trained on toys"
    assert meta["modelspec.title"] == "Toy" and meta["modelspec.author"] == "tester"
    assert meta["modelspec.description"] == "red squares" and meta["modelspec.license"] == "MIT"
    assert meta["modelspec.tags"] == "toy, test"


def test_tensorboard_logs_loss_and_the_lr_of_each_parameter_group(run_with_saves):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = list((run_with_saves / "logs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("toy_")
    acc = EventAccumulator(str(runs[0]))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss/current", "loss/average", "loss/epoch", "lr/unet", "lr/textencoder"} <= tags
    assert [e.step for e in acc.Scalars("loss/current")] == [1, 2, 3, 4]
    assert [e.value for e in acc.Scalars("lr/unet")] == pytest.approx([1e-2] * 4)
    assert [e.value for e in acc.Scalars("lr/textencoder")] == pytest.approx([1e-3] * 4)
    assert all(e.value > 0 for e in acc.Scalars("loss/average"))
    assert [e.step for e in acc.Scalars("loss/epoch")] == [1, 2, 3, 4]
