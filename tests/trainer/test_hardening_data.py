"""Datasets that used to mislead or exhaust a run: ignored folders named, repeats bounded,
caption symlinks kept inside the dataset (Hardening, round two: items 4, 9, 16)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import REQUIRED, DataCfg
from trainer.data.folders import MAX_IMAGE_REPEATS, MAX_REPEATS, DatasetError, scan_dataset
from trainer.data.resolved import resolve_dataset


def _png(path: Path, size: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), "red").save(path)
    return path


# ---- item 16: every ignored sub-folder named, with why ----------------------------------------
def test_a_folder_whose_sub_folders_are_all_ignored_names_each_and_why(tmp_path):
    for name in ("0_zero", "abc_letters", "5"):
        _png(tmp_path / "train" / name / "a.png")
    with pytest.raises(DatasetError) as err:
        scan_dataset(tmp_path / "train")
    message = str(err.value)
    assert "'0_zero': the repeat count must be at least 1" in message
    assert "'abc_letters': its name must start with the number of repeats" in message
    assert "'10_abc_letters'" in message and "'5': its name must start" in message
    assert err.value.key == "train_data_dir"


def test_the_reg_folder_problem_names_the_reg_setting(tmp_path):
    _png(tmp_path / "reg" / "0_x" / "a.png")
    with pytest.raises(DatasetError) as err:
        scan_dataset(tmp_path / "reg", is_reg=True)
    assert err.value.key == "reg_data_dir" and "'0_x'" in str(err.value)


# ---- item 9: repeats bounded before anything is held in memory --------------------------------
@pytest.mark.parametrize(
    ("folder", "shown"),
    [("100000000_x", "100,000,000 repeats"), ("99999999999999999999_x", "a 20-digit number of repeats")],
)
def test_too_many_repeats_in_a_folder_name_is_a_dataset_error_naming_it(tmp_path, folder, shown):
    _png(tmp_path / "train" / folder / "a.png")
    _png(tmp_path / "train" / "2_fine" / "a.png")
    with pytest.raises(DatasetError) as err:
        resolve_dataset(DataCfg(train_data_dir=str(tmp_path / "train"), max_resolution="64,64"))
    message = str(err.value)
    assert f"folder '{folder}' asks for {shown}" in message
    assert f"{MAX_REPEATS:,} a folder may have" in message and "2_fine" not in message


def test_the_most_repeats_a_folder_may_have_still_plans(tmp_path):
    _png(tmp_path / "train" / f"{MAX_REPEATS}_x" / "a.png")
    data = resolve_dataset(DataCfg(train_data_dir=str(tmp_path / "train")))
    assert data.scan.items[0].repeats == MAX_REPEATS


def test_an_epoch_larger_than_a_run_can_hold_is_refused_naming_the_folders(tmp_path):
    images = MAX_IMAGE_REPEATS // MAX_REPEATS + 1
    for i in range(images):
        _png(tmp_path / "train" / f"{MAX_REPEATS}_big" / f"{i}.png", size=8)
    _png(tmp_path / "train" / "1_small" / "a.png", size=8)
    with pytest.raises(DatasetError) as err:
        resolve_dataset(DataCfg(train_data_dir=str(tmp_path / "train")))
    message = str(err.value)
    assert f"{images * MAX_REPEATS + 1:,} images x repeats" in message
    assert (
        f"({MAX_IMAGE_REPEATS:,})" in message and f"'{MAX_REPEATS}_big' ({images * MAX_REPEATS:,})" in message
    )


def test_num_repeats_in_a_dataset_toml_is_bounded_too(tmp_path):
    _png(tmp_path / "imgs" / "a.png")
    toml = tmp_path / "d.toml"
    toml.write_text(
        f"[[datasets]]\n[[datasets.subsets]]\nimage_dir = '{(tmp_path / 'imgs').as_posix()}'\n"
        "num_repeats = 100000000\n",
        encoding="utf-8",
    )
    with pytest.raises(DatasetError) as err:
        resolve_dataset(DataCfg(dataset_config=str(toml), **REQUIRED))
    assert "dataset 1 subset 1: num_repeats asks for 100,000,000 repeats" in str(err.value)
    assert err.value.key == "dataset_config"


def test_a_huge_repeat_count_exits_2_before_any_model_loads(tmp_path, capsys):
    from trainer.__main__ import main

    _png(tmp_path / "train" / "100000000_x" / "a.png")
    preset = tmp_path / "p.json"
    preset.write_text(
        json.dumps(
            {
                "pretrained_model_name_or_path": str(tmp_path / "no-model"),
                "train_data_dir": str(tmp_path / "train"),
                "output_dir": str(tmp_path / "out"),
                "mixed_precision": "no",
                "optimizer": "AdamW",
            }
        ),
        encoding="utf-8",
    )
    assert main(["--config", str(preset)]) == 2
    err = capsys.readouterr().err
    assert "'100000000_x' asks for 100,000,000 repeats" in err and "Traceback" not in err


# ---- item 4: a caption symlink leaving the dataset is not read --------------------------------
needs_symlinks = pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")


@needs_symlinks
def test_a_caption_symlink_leaving_the_dataset_is_skipped_and_never_reaches_the_metadata(tmp_path):
    from trainer.data.dataset import TrainDataset

    secret = tmp_path / "private" / "notes.txt"
    secret.parent.mkdir()
    secret.write_text("private, do not train", encoding="utf-8")
    folder = tmp_path / "train" / "3_mychar"
    _png(folder / "a.png")
    _png(folder / "b.png")
    (folder / "a.txt").symlink_to(secret)
    (folder / "b.txt").write_text("mychar, smile", encoding="utf-8")
    data = resolve_dataset(DataCfg(train_data_dir=str(tmp_path / "train"), max_resolution="64,64"))
    captions = {item.path.name: item for item in data.scan.items}
    assert captions["a.png"].caption == "mychar" and not captions["a.png"].has_caption_file
    assert captions["b.png"].caption == "mychar, smile"
    assert any(str(folder / "a.txt") in w and "outside the dataset folder" in w for w in data.warnings)
    frequency = TrainDataset(data.scan, None, data.choices).tag_frequency()
    assert "private" not in json.dumps(frequency) and frequency["3_mychar"]["mychar"] == 2


@needs_symlinks
def test_a_caption_symlink_inside_the_dataset_is_read(tmp_path):
    folder = tmp_path / "train" / "1_x"
    _png(folder / "a.png")
    (tmp_path / "train" / "shared.txt").write_text("shared caption", encoding="utf-8")
    (folder / "a.txt").symlink_to(tmp_path / "train" / "shared.txt")
    assert scan_dataset(tmp_path / "train").items[0].caption == "shared caption"


@needs_symlinks
def test_a_dataset_toml_may_point_anywhere_but_its_folders_keep_their_symlinks_inside(tmp_path):
    real = tmp_path / "elsewhere" / "imgs"
    _png(real / "a.png")
    _png(real / "b.png")
    (real / "b.txt").symlink_to(tmp_path / "outside.txt")
    (tmp_path / "outside.txt").write_text("outside text", encoding="utf-8")
    (tmp_path / "outside.png").write_bytes((real / "a.png").read_bytes())
    (real / "c.png").symlink_to(tmp_path / "outside.png")
    link = tmp_path / "linked_dir"
    link.symlink_to(real, target_is_directory=True)  # the image_dir itself may be a symlink
    toml = tmp_path / "d.toml"
    toml.write_text(
        f"[[datasets]]\n[[datasets.subsets]]\nimage_dir = '{link.as_posix()}'\nclass_tokens = 'tok'\n",
        encoding="utf-8",
    )
    data = resolve_dataset(DataCfg(dataset_config=str(toml), max_resolution="64,64", **REQUIRED))
    assert sorted(item.path.name for item in data.scan.items) == ["a.png", "b.png"]
    assert {item.caption for item in data.scan.items} == {"tok"}
    assert [Path(s.path).name for s in data.skipped] == ["c.png"]
    assert not any("outside text" in w for w in data.warnings)
