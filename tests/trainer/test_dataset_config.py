"""dataset_config: sd-scripts' dataset TOML in place of the image folder."""

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import write_preset
from trainer.config import config_from_dict
from trainer.data.dataset_config import read_dataset_config
from trainer.data.folders import DatasetError
from trainer.data.resolved import resolve_dataset
from trainer.plan.training_plan import build_plan

BASE = {"pretrained_model_name_or_path": "m", "output_dir": "o", "mixed_precision": "no"}


def folder(path: Path, n: int, caption: str | None = None, ext: str = ".txt") -> Path:
    path.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (64, 64), (200, 30 * i, 30)).save(path / f"i{i}.png")
        if caption is not None:
            (path / f"i{i}{ext}").write_text(caption, encoding="utf-8")
    return path


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dataset.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def toml(tmp_path):
    folder(tmp_path / "char", 2, "mychar, smile")
    folder(tmp_path / "outfit", 1, "mychar, coat", ext=".caption")
    folder(tmp_path / "reg", 3)  # no captions: the class token is the caption
    return write_toml(
        tmp_path,
        """
[general]
shuffle_caption = true
keep_tokens = 1

[[datasets]]
resolution = 64
batch_size = 1
min_bucket_reso = 64
max_bucket_reso = 128

  [[datasets.subsets]]
  image_dir = 'char'
  num_repeats = 3
  class_tokens = 'mychar'

  [[datasets.subsets]]
  image_dir = 'outfit'
  num_repeats = 2
  caption_extension = '.caption'

  [[datasets.subsets]]
  image_dir = 'reg'
  is_reg = true
  class_tokens = 'woman'
""",
    )


def test_subsets_repeats_reg_and_run_settings_reach_the_plan(toml):
    cfg, _ = config_from_dict({**BASE, "dataset_config": str(toml), "train_batch_size": 4})
    plan = build_plan(cfg)
    assert (plan.images, plan.image_repeats, plan.reg_images) == (3, 2 * 3 + 1 * 2, 3)
    assert plan.batch_size == 1 and plan.steps_per_epoch == 16  # 8 images x repeats + 8 reg, batch 1
    assert plan.buckets == [{"resolution": [64, 64], "count": 16}]
    notes = "\n".join(plan.warnings)
    assert "train_batch_size = 1" in notes and "shuffle_caption = True" in notes
    resolved = resolve_dataset(cfg).cfg
    assert resolved.shuffle_caption and resolved.keep_tokens == 1 and resolved.max_resolution == "64,64"


def test_captions_come_from_each_subsets_extension_or_class_token(toml):
    prepared = resolve_dataset(config_from_dict({**BASE, "dataset_config": str(toml)})[0])
    captions = sorted({item.caption for item in prepared.scan.items})
    assert captions == ["mychar, coat", "mychar, smile"]
    assert {item.caption for item in prepared.reg_scan.items} == {"woman"}


@pytest.mark.parametrize(
    "text, words",
    [
        (
            (
                "[[datasets]]\n[[datasets.subsets]]\nimage_dir='a'\nkeep_tokens=1\n"
                "[[datasets.subsets]]\nimage_dir='b'\nkeep_tokens=2"
            ),
            "keep_tokens is 1 in dataset 1 subset 1",
        ),
        ("[[datasets]]\n[[datasets.subsets]]\nmetadata_file='m.json'", "fine-tuning datasets"),
        (
            "[[datasets]]\n[[datasets.subsets]]\nimage_dir='a'\nnum_repeat=3",
            "'num_repeat' is not a dataset option",
        ),
        ("[[datasets]]\n[[datasets.subsets]]\nnum_repeats=3", "image_dir is missing"),
        ("[[datasets]]\n[[datasets.subsets]]\nimage_dir='a'\nnum_repeats=0", "num_repeats = 0"),
        ("[general\n", "is not valid TOML"),
        ("[general]\nshuffle_caption=true", "has no [[datasets]]"),
    ],
)
def test_a_file_that_cannot_be_used_is_named_with_the_reason(tmp_path, text, words):
    with pytest.raises(DatasetError) as info:
        read_dataset_config(write_toml(tmp_path, text))
    assert words in str(info.value) and "dataset_config" in str(info.value)


def test_a_value_the_settings_refuse_is_named(tmp_path):
    folder(tmp_path / "a", 1, "x")
    path = write_toml(tmp_path, "[[datasets]]\nresolution = 100\n[[datasets.subsets]]\nimage_dir='a'")
    cfg, _ = config_from_dict({**BASE, "dataset_config": str(path)})
    with pytest.raises(DatasetError, match="max_resolution"):
        build_plan(cfg)


def test_a_run_trains_from_a_dataset_config_without_an_image_folder(tiny_model, tmp_path, toml):
    from trainer.__main__ import main

    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        Path(""),
        train_data_dir="",
        dataset_config=str(toml),
        max_train_steps=2,
        epoch=1,
    )
    assert json.loads(preset.read_text())["train_data_dir"] == ""
    assert main(["--config", str(preset)]) == 0
    assert (tmp_path / "out" / "toy.safetensors").is_file()
