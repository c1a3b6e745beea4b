"""The dry-run plan: steps, buckets, saves and advice, hand-computed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import DataCfg
from trainer.config import TrainingConfig, parse_resolution
from trainer.data.folders import DatasetError
from trainer.data.resolved import resolve_dataset
from trainer.plan.training_plan import build_plan, save_names

# The values the hand-computed numbers below assume.
PLAN_VALUES = {
    "max_resolution": "512,512",
    "min_bucket_reso": 256,
    "max_bucket_reso": 1024,
    "train_batch_size": 2,
    "epoch": 1,
    "max_train_epochs": 0,
    "max_train_steps": 0,
    "gradient_accumulation_steps": 1,
    "save_every_n_epochs": 1,
    "output_name": "mylora",
    "save_model_as": "safetensors",
    "network_dim": 8,
    "network_alpha": 1.0,
    "optimizer": "AdamW8bit",
    "lr_warmup": 10,
    "lr_scheduler": "cosine",
}


def Cfg(**values) -> TrainingConfig:  # noqa: N802
    """The data settings at SD1.5 sizes (256 to 1024 px), what the plan reads besides, and
    `values` over them."""
    return DataCfg(**{**PLAN_VALUES, **values})


def image(path: Path, size) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 200)).save(path)


@pytest.fixture
def dataset(tmp_path) -> Path:
    """3_a: three 512x512 + one 768x512; 2_b: two 300x900 (one captioned)."""
    root = tmp_path / "train"
    for i in range(3):
        image(root / "3_a" / f"sq{i}.png", (512, 512))
    image(root / "3_a" / "wide.png", (768, 512))
    image(root / "2_b" / "tall0.png", (300, 900))
    image(root / "2_b" / "tall1.png", (300, 900))
    (root / "2_b" / "tall0.txt").write_text("b, tall")
    return root


def test_steps_per_epoch_round_up_per_bucket(dataset):
    plan = build_plan(Cfg(train_data_dir=str(dataset), epoch=4))
    # 512x512: 3 images x 3 = 9 -> 5 batches of 2; 640x384: 1 x 3 = 3 -> 2;
    # 256x832: 2 x 2 = 4 -> 2. Rounding per bucket: 9 steps, not ceil(16 / 2) = 8.
    assert plan.buckets == [
        {"resolution": [256, 832], "count": 4},
        {"resolution": [512, 512], "count": 9},
        {"resolution": [640, 384], "count": 3},
    ]
    assert plan.images == 6 and plan.image_repeats == 16 and plan.reg_images == 0
    assert plan.steps_per_epoch == 9
    assert plan.epochs == 4 and plan.total_steps == 36


def test_reg_images_double_the_dataset_in_the_same_buckets(dataset, tmp_path):
    image(tmp_path / "reg" / "1_person" / "p0.png", (512, 512))
    image(tmp_path / "reg" / "1_person" / "p1.png", (512, 512))
    plan = build_plan(Cfg(train_data_dir=str(dataset), reg_data_dir=str(tmp_path / "reg")))
    assert plan.reg_images == 2 and plan.reg_image_repeats == 16
    # 512x512 now holds 9 + 16 = 25 -> 13 batches; the others are unchanged: 13 + 2 + 2.
    assert {tuple(b["resolution"]): b["count"] for b in plan.buckets}[(512, 512)] == 25
    assert plan.steps_per_epoch == 17
    assert any(s["is_reg"] and s["folder"] == "1_person" for s in plan.subsets)


def test_max_train_steps_wins_over_epochs(dataset):
    plan = build_plan(Cfg(train_data_dir=str(dataset), epoch=10, max_train_epochs=7, max_train_steps=20))
    assert plan.total_steps == 20
    assert plan.epochs == 3  # ceil(20 / 9)


def test_max_train_epochs_wins_over_epoch_and_accumulation_divides(dataset):
    plan = build_plan(
        Cfg(train_data_dir=str(dataset), epoch=10, max_train_epochs=3, gradient_accumulation_steps=2)
    )
    assert plan.update_steps_per_epoch == 5  # ceil(9 / 2)
    assert plan.epochs == 3 and plan.total_steps == 15


def test_save_names_follow_kohya():
    assert save_names("mylora", 10, 3) == [
        "mylora-000003.safetensors",
        "mylora-000006.safetensors",
        "mylora-000009.safetensors",
        "mylora.safetensors",
    ]
    assert save_names("mylora", 3, 2) == ["mylora-000002.safetensors", "mylora.safetensors"]
    assert save_names("mylora", 4, 2) == ["mylora-000002.safetensors", "mylora.safetensors"]
    assert save_names("mylora", 1, 1) == ["mylora.safetensors"]


def test_plan_lists_the_saves(dataset):
    plan = build_plan(Cfg(train_data_dir=str(dataset), epoch=3, save_every_n_epochs=2))
    assert plan.saves == ["mylora-000002.safetensors", "mylora.safetensors"]


def test_adafactor_with_warmup_is_explained(dataset):
    cfg = Cfg(train_data_dir=str(dataset), optimizer="Adafactor", lr_warmup=10, lr_scheduler="cosine")
    warning = [w for w in build_plan(cfg).warnings if "Adafactor" in w]
    assert len(warning) == 1 and "LR warmup to 0" in warning[0] and "'adafactor'" in warning[0]
    for ok in (
        Cfg(train_data_dir=str(dataset), optimizer="Adafactor", lr_warmup=0),
        Cfg(train_data_dir=str(dataset), optimizer="Adafactor", lr_scheduler="adafactor"),
    ):
        assert not [w for w in build_plan(ok).warnings if "Adafactor" in w]


def test_alpha_above_rank_is_warned(dataset):
    plan = build_plan(Cfg(train_data_dir=str(dataset), network_dim=4, network_alpha=8))
    assert any("rank must be >= alpha" in w for w in plan.warnings)
    plan = build_plan(Cfg(train_data_dir=str(dataset), network_dim=8, network_alpha=4))
    assert not any("alpha" in w for w in plan.warnings)


def test_skipped_files_and_missing_captions_are_reported(dataset):
    (dataset / "3_a" / "broken.png").write_bytes(b"")
    plan = build_plan(Cfg(train_data_dir=str(dataset)))
    assert plan.skipped == [{"path": str(dataset / "3_a" / "broken.png"), "reason": "empty file (0 bytes)"}]
    assert any("broken.png" in w for w in plan.warnings)
    assert any("4 of 4 images have no caption file" in w for w in plan.warnings)
    assert any("1 of 2 images have no caption file" in w for w in plan.warnings)


def test_unbucketable_images_are_skipped_not_fatal(dataset):
    image(dataset / "2_b" / "sliver.png", (8, 600))
    prepared = resolve_dataset(Cfg(train_data_dir=str(dataset), bucket_no_upscale=True))
    assert "sliver.png" not in [i.path.name for i in prepared.scan.items]
    assert len(prepared.choices) == len(prepared.scan.items)
    assert any("sliver.png" in s.path for s in prepared.scan.skipped)


def test_few_image_repeats_get_a_soft_hint_only(dataset):
    assert any("5,000-10,000" in w for w in build_plan(Cfg(train_data_dir=str(dataset))).warnings)


def test_to_json_keys_and_serialisable(dataset):
    data = build_plan(Cfg(train_data_dir=str(dataset), epoch=2)).to_json()
    for key in (
        "config",
        "images",
        "reg_images",
        "buckets",
        "steps_per_epoch",
        "epochs",
        "total_steps",
        "saves",
        "skipped",
        "warnings",
        "subsets",
    ):
        assert key in data
    assert data["config"]["train_data_dir"] == str(dataset)
    assert json.loads(json.dumps(data)) == data


def test_to_text_shows_the_numbers(dataset):
    text = build_plan(Cfg(train_data_dir=str(dataset), epoch=2)).to_text()
    assert "Steps per epoch: 9" in text and "Total steps: 18" in text
    assert "512 x 512" in text and "mylora.safetensors" in text


def test_folder_errors_raise_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="img001.png"):
        build_plan(Cfg(train_data_dir=str(tmp_path / "missing")))


def test_parse_resolution():
    assert parse_resolution("512,512") == (512, 512)
    assert parse_resolution("768, 512") == (768, 512)
    assert parse_resolution("1024") == (1024, 1024)
    with pytest.raises(ValueError, match="width,height"):
        parse_resolution("big")


def test_plan_does_not_import_torch():
    code = "import sys, trainer.plan.training_plan; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    assert out.stdout.strip() == "False"
