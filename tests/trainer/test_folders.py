"""Scanning Kohya-style folders: repeats, captions, bad files, layout errors."""

import os
from pathlib import Path

import pytest
from PIL import Image

from trainer.data.folders import DatasetError, parse_repeats, reg_repeat_counts, scan_dataset


def make_image(path: Path, size=(64, 48), color=(200, 30, 30), **save_args) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, **save_args)
    return path


@pytest.mark.parametrize(
    "name, expected",
    [
        ("50_mycar", (50, "mycar")),
        ("50_my car", (50, "my car")),
        ("1_a_b", (1, "a_b")),
        ("007_bond", (7, "bond")),
        ("3_", (3, "")),
        ("0_x", None),
        ("abc_x", None),
        ("x", None),
        ("-1_x", None),
        ("1.5_x", None),
    ],
)
def test_parse_repeats(name, expected):
    assert parse_repeats(name) == expected


def test_scan_reads_repeats_sizes_and_captions(tmp_path):
    make_image(tmp_path / "10_mychar" / "a.png", size=(640, 480))
    (tmp_path / "10_mychar" / "a.txt").write_text("mychar, smile\nsecond line ignored\n")
    make_image(tmp_path / "10_mychar" / "b.JPG", size=(300, 500))
    (tmp_path / "10_mychar" / "b.txt").write_bytes("\ufeffmychar, 笑顔\r\nmore\r\n".encode())
    make_image(tmp_path / "10_mychar" / "c.webp")  # no caption file
    make_image(tmp_path / "2_style" / "d.bmp")
    scan = scan_dataset(tmp_path)

    by_name = {item.path.name: item for item in scan.items}
    assert sorted(by_name) == ["a.png", "b.JPG", "c.webp", "d.bmp"]
    assert by_name["a.png"].caption == "mychar, smile"
    assert (by_name["a.png"].width, by_name["a.png"].height) == (640, 480)
    assert by_name["b.JPG"].caption == "mychar, 笑顔"
    assert by_name["c.webp"].caption == "mychar" and not by_name["c.webp"].has_caption_file
    assert by_name["a.png"].has_caption_file
    assert by_name["d.bmp"].repeats == 2 and by_name["d.bmp"].subset == "2_style"
    assert by_name["a.png"].repeats == 10 and not by_name["a.png"].is_reg
    assert scan.subsets[0] == {
        "folder": "10_mychar",
        "repeats": 10,
        "name": "mychar",
        "images": 3,
        "missing_captions": 1,
        "is_reg": False,
    }
    assert any("1 of 3 images have no caption file" in w for w in scan.warnings)
    assert scan.skipped == []


def test_caption_extension_is_configurable_and_the_dot_optional(tmp_path):
    make_image(tmp_path / "1_x" / "a.png")
    (tmp_path / "1_x" / "a.caption").write_text("from caption file")
    assert scan_dataset(tmp_path, ".caption").items[0].caption == "from caption file"
    assert scan_dataset(tmp_path, "caption").items[0].caption == "from caption file"
    assert scan_dataset(tmp_path, ".txt").items[0].caption == "x"


def test_non_utf8_caption_warns_and_uses_the_class_token(tmp_path):
    make_image(tmp_path / "1_mychar" / "a.png")
    (tmp_path / "1_mychar" / "a.txt").write_bytes("笑顔".encode("cp932"))
    scan = scan_dataset(tmp_path)
    assert scan.items[0].caption == "mychar"
    assert any("a.txt is not UTF-8" in w for w in scan.warnings)


def test_exif_rotated_jpeg_reports_the_upright_size(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: stored 80x40, shown 40x80
    make_image(tmp_path / "1_x" / "r.jpg", size=(80, 40), exif=exif)
    item = scan_dataset(tmp_path).items[0]
    assert (item.width, item.height) == (40, 80)


def test_bad_files_are_skipped_with_reasons(tmp_path):
    folder = tmp_path / "5_mychar"
    make_image(folder / "good.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "page.jpg").write_text("<html><body>403 Forbidden</body></html>")
    make_image(tmp_path / "cut.png", size=(256, 256))
    data = (tmp_path / "cut.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    (folder / "notes.md").write_text("not an image, ignored")
    (folder / ".DS_Store").write_bytes(b"\x00\x01")

    scan = scan_dataset(tmp_path)
    assert [i.path.name for i in scan.items] == ["good.png"]
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert set(reasons) == {"empty.png", "page.jpg", "cut.png"}
    assert "0 bytes" in reasons["empty.png"]
    assert "not an image" in reasons["page.jpg"]
    assert "truncated" in reasons["cut.png"]


def test_truncated_jpeg_is_skipped(tmp_path):
    make_image(tmp_path / "whole.jpg", size=(256, 256))
    data = (tmp_path / "whole.jpg").read_bytes()
    make_image(tmp_path / "1_x" / "ok.png")
    (tmp_path / "1_x" / "cut.jpg").write_bytes(data[: len(data) // 2])
    scan = scan_dataset(tmp_path)
    assert [Path(s.path).name for s in scan.skipped] == ["cut.jpg"]
    assert "truncated" in scan.skipped[0].reason


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_outside_the_dataset_is_skipped(tmp_path):
    outside = make_image(tmp_path / "elsewhere" / "secret.png")
    root = tmp_path / "data"
    make_image(root / "1_x" / "ok.png")
    (root / "1_x" / "link.png").symlink_to(outside)
    make_image(root / "1_x" / "real.png")
    (root / "1_x" / "inner.png").symlink_to(root / "1_x" / "real.png")
    scan = scan_dataset(root)
    assert sorted(i.path.name for i in scan.items) == ["inner.png", "ok.png", "real.png"]
    assert [Path(s.path).name for s in scan.skipped] == ["link.png"]
    assert "outside" in scan.skipped[0].reason


def test_bad_folder_names_are_skipped_with_a_warning(tmp_path):
    make_image(tmp_path / "10_good" / "a.png")
    make_image(tmp_path / "mychar" / "b.png")
    make_image(tmp_path / "0_zero" / "c.png")
    scan = scan_dataset(tmp_path)
    assert [i.path.name for i in scan.items] == ["a.png"]
    assert any("'mychar'" in w for w in scan.warnings)
    assert any("'0_zero'" in w for w in scan.warnings)


def test_missing_folder_is_a_dataset_error_with_the_layout(tmp_path):
    with pytest.raises(DatasetError) as err:
        scan_dataset(tmp_path / "nope")
    assert "does not exist" in str(err.value)
    assert "train/50_mychar/img001.png + img001.txt" in str(err.value)


def test_empty_folder_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="is empty"):
        scan_dataset(tmp_path)


def test_images_without_subfolders_explain_the_layout(tmp_path):
    make_image(tmp_path / "a.png")
    make_image(tmp_path / "notrepeats" / "b.png")
    with pytest.raises(DatasetError) as err:
        scan_dataset(tmp_path)
    text = str(err.value)
    assert "holds 1 images directly" in text and "<repeats>_<name>" in text
    assert "train/50_mychar/img001.png" in text


def test_choosing_the_subfolder_itself_suggests_the_parent(tmp_path):
    make_image(tmp_path / "10_mychar" / "a.png")
    with pytest.raises(DatasetError, match="choose its parent folder"):
        scan_dataset(tmp_path / "10_mychar")


def test_subfolders_without_usable_images_are_a_dataset_error(tmp_path):
    (tmp_path / "10_mychar").mkdir()
    (tmp_path / "10_mychar" / "a.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="No usable images"):
        scan_dataset(tmp_path)


def test_reg_scan_marks_items_and_names_the_folder_kind(tmp_path):
    make_image(tmp_path / "1_person" / "a.png")
    assert scan_dataset(tmp_path, is_reg=True).items[0].is_reg
    with pytest.raises(DatasetError, match="regularisation folder"):
        scan_dataset(tmp_path / "missing", is_reg=True)


def test_reg_round_robin_matches_the_train_count():
    class R:
        def __init__(self, repeats):
            self.repeats = repeats

    assert reg_repeat_counts([R(1)] * 3, 7) == [3, 2, 2]
    assert reg_repeat_counts([R(1)] * 5, 3) == [1, 1, 1, 0, 0]
    assert sum(reg_repeat_counts([R(2)] * 4, 20)) == 20
    # Kohya's first pass takes whole folder repeats, so it can overshoot a little.
    assert reg_repeat_counts([R(3)] * 5, 10) == [3, 3, 3, 3, 0]


def test_an_unset_folder_is_not_the_current_directory(tmp_path, monkeypatch):
    make_image(tmp_path / "1_x" / "a.png")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match="No image folder is set"):
        scan_dataset("")
