"""Bad input, before anything loads: a corpus of broken images, captions and folders made
here, and the device / output checks. Each case is skipped or reported by name, never a
crash (docs/ANCHORS.md section 8: what Kohya users lose runs to)."""

from __future__ import annotations

import codecs
import dataclasses
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from trainer.config import ConfigError, config_from_dict
from trainer.data.dataset import TrainDataset
from trainer.data.folders import DatasetError, scan_dataset
from trainer.data.images import load_rgb
from trainer.data.resolved import resolve_dataset
from trainer.run.preflight import run_preflight
from trainer.text.length import check_captions, long_caption_warning


def _png(path: Path, img: Image.Image, **kw) -> Path:
    img.save(path, **kw)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """`train/10_bad/`: one good image and every kind of trouble users' folders hold."""
    root = tmp_path_factory.mktemp("corpus") / "train"
    d = root / "10_bad"
    d.mkdir(parents=True)
    _png(d / "good.png", Image.new("RGB", (64, 64), (10, 200, 10)))
    # EXIF orientation 6: stored 64 wide x 32 high, shown 32 x 64
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.new("RGB", (64, 32), "black")
    stored.paste((255, 0, 0), (0, 0, 8, 32))  # a red band on the stored left = the shown top
    stored.save(d / "rotated.jpg", exif=exif.tobytes(), quality=95)
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (0, 0, 32, 64))
    _png(d / "rgba.png", rgba)
    _png(d / "la.png", Image.new("LA", (64, 64), (0, 0)))
    pal = Image.new("P", (64, 64), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    _png(d / "palette.png", pal, transparency=0)
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(d / "cmyk.jpg")
    grey = np.full((64, 64), 32768, dtype=np.uint16)
    _png(d / "grey16.png", Image.fromarray(grey, mode="I;16"))
    _png(
        d / "anim.png",
        Image.new("RGB", (64, 64), "blue"),
        save_all=True,
        append_images=[Image.new("RGB", (64, 64), "yellow")],
    )
    full = (d / "good.png").read_bytes()
    (d / "truncated.png").write_bytes(full[: len(full) // 2])
    (d / "zero.jpg").write_bytes(b"")
    (d / "page.jpg").write_text("<!DOCTYPE html><html><body>403 Forbidden</body></html>")
    outside = tmp_path_factory.mktemp("elsewhere") / "secret.png"
    _png(outside, Image.new("RGB", (64, 64)))
    os.symlink(outside, d / "link.png")
    # captions
    (d / "good.txt").write_bytes(codecs.BOM_UTF8 + b"good, bom")
    (d / "rgba.txt").write_bytes(b"first line\r\nsecond line\r\n")
    (d / "la.txt").write_bytes("utf16 caption".encode("utf-16"))
    (d / "cmyk.txt").write_bytes("caf\xe9 au lait".encode("cp1252"))
    # folders that are not <repeats>_<name>
    for name in ("0_zero", "abc_letters"):
        (root / name).mkdir()
        _png(root / name / "x.png", Image.new("RGB", (64, 64)))
    return root


@pytest.fixture(scope="module")
def scanned(corpus):
    return scan_dataset(corpus)


def _skipped(scan) -> dict[str, str]:
    return {Path(s.path).name: s.reason for s in scan.skipped}


def test_broken_files_are_skipped_with_a_reason_naming_each(scanned):
    skipped = _skipped(scanned)
    assert "truncated" in skipped["truncated.png"]
    assert "empty file" in skipped["zero.jpg"]
    assert "not an image" in skipped["page.jpg"]
    assert "symlink pointing outside" in skipped["link.png"]
    kept = sorted(item.path.name for item in scanned.items)
    assert kept == [
        "anim.png",
        "cmyk.jpg",
        "good.png",
        "grey16.png",
        "la.png",
        "palette.png",
        "rgba.png",
        "rotated.jpg",
    ]


def test_decompression_bomb_is_skipped(tmp_path, monkeypatch):
    d = tmp_path / "train" / "1_x"
    d.mkdir(parents=True)
    _png(d / "ok.png", Image.new("RGB", (16, 16)))
    _png(d / "bomb.png", Image.new("RGB", (64, 64)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64x64 is then over twice the limit
    scan = scan_dataset(tmp_path / "train")
    assert "too large to load safely" in _skipped(scan)["bomb.png"]
    assert [i.path.name for i in scan.items] == ["ok.png"]


def test_animated_image_trains_its_first_frame_with_a_notice(scanned, corpus):
    assert any("anim.png is animated" in w and "first frame" in w for w in scanned.warnings)
    assert load_rgb(corpus / "10_bad" / "anim.png").getpixel((5, 5)) == (0, 0, 255)


def test_pictures_load_as_a_viewer_shows_them(corpus):
    d = corpus / "10_bad"
    rotated = load_rgb(d / "rotated.jpg")
    assert rotated.size == (32, 64)
    assert rotated.getpixel((16, 2))[0] > 200 and rotated.getpixel((16, 60))[0] < 60
    assert load_rgb(d / "rgba.png").getpixel((50, 10)) == (255, 255, 255)  # transparent -> white
    assert load_rgb(d / "rgba.png").getpixel((10, 10)) == (255, 0, 0)
    assert load_rgb(d / "la.png").getpixel((3, 3)) == (255, 255, 255)
    assert load_rgb(d / "palette.png").getpixel((3, 3)) == (255, 255, 255)
    r, g, b = load_rgb(d / "cmyk.jpg").getpixel((3, 3))
    assert r > 200 and g < 60 and b < 60  # CMYK (0,255,255,0) is red
    assert load_rgb(d / "grey16.png").getpixel((3, 3)) == (128, 128, 128)  # scaled, not clipped


def test_captions_bom_crlf_utf16_handled_and_other_encodings_named(scanned):
    captions = {item.path.name: item.caption for item in scanned.items}
    assert captions["good.png"] == "good, bom"
    assert captions["rgba.png"] == "first line"
    assert captions["la.png"] == "utf16 caption"
    assert captions["cmyk.jpg"] == "bad"  # the class token, with a warning naming the file
    assert any("cmyk.txt is not UTF-8" in w for w in scanned.warnings)


def test_bad_folder_names_are_named_with_the_reason(scanned):
    text = "\n".join(scanned.warnings)
    assert "skipped folder '0_zero': the repeat count must be at least 1" in text
    assert "skipped folder 'abc_letters'" in text and "'10_abc_letters'" in text


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "is empty"),
        (
            lambda root: (root.mkdir(), Image.new("RGB", (8, 8)).save(root / "a.png")),
            "images must be inside <repeats>_<name> sub-folders",
        ),
        (
            lambda root: (root.mkdir(), (root / "0_x").mkdir(), (root / "abc_y").mkdir()),
            "no <repeats>_<name> sub-folders",
        ),
    ],
)
def test_unusable_folders_explain_the_expected_layout(tmp_path, make, expected):
    root = tmp_path / "train"
    make(root)
    with pytest.raises(DatasetError) as info:
        scan_dataset(root)
    message = str(info.value)
    assert expected in message
    assert "Expected layout" in message and "train/50_mychar/img001.png" in message


def test_a_file_deleted_during_training_is_skipped_not_a_crash(tmp_path):
    d = tmp_path / "train" / "2_x"
    d.mkdir(parents=True)
    for i in range(2):
        _png(d / f"{i}.png", Image.new("RGB", (64, 64)))
    cfg, _ = config_from_dict(
        {
            "pretrained_model_name_or_path": "m",
            "train_data_dir": str(d.parent),
            "output_dir": str(tmp_path / "o"),
            "max_resolution": "64,64",
            "min_bucket_reso": 64,
        }
    )
    p = resolve_dataset(cfg)
    warnings: list[str] = []
    ds = TrainDataset(p.scan, None, p.choices, on_warning=warnings.append)
    (d / "0.png").unlink()
    samples = [ds.sample(i) for i in range(len(ds))]
    assert sum(s is None for s in samples) == 2 and sum(s is not None for s in samples) == 2
    assert len(warnings) == 1 and "0.png" in warnings[0]


def test_captions_longer_than_the_token_limit_are_named(tiny_model, scanned):
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(tiny_model("sd15") / "tokenizer"))

    data = SimpleNamespace(images=[(item, None) for item in scanned.items])  # what the check reads
    assert check_captions(data, tokenizer, 75) is None
    long_item = dataclasses.replace(scanned.items[0], caption=", ".join(["red hat"] * 40))
    data.images.append((long_item, None))
    message = check_captions(data, tokenizer, 75, prefix="mychar")
    assert message.startswith("1 caption(s) are longer than max_token_length 75")
    assert long_item.path.name in message and "raise max_token_length" in message
    assert check_captions(data, tokenizer, 225) is None
    assert "and 2 more" in long_caption_warning([(Path(f"{i}.png"), 80) for i in range(12)], 75)


# ---- device and output checks (preflight) ---------------------------------------------------
@pytest.fixture
def base(tmp_path, tiny_model) -> dict:
    d = tmp_path / "train" / "1_x"
    d.mkdir(parents=True)
    return {
        "pretrained_model_name_or_path": str(tiny_model("sd15")),
        "train_data_dir": str(d.parent),
        "output_dir": str(tmp_path / "new" / "out"),
        "mixed_precision": "no",
        "optimizer": "AdamW",
    }


def preflight(values: dict) -> tuple[dict[str, str], list[str]]:
    cfg, _ = config_from_dict(values)
    problems, warnings = run_preflight(cfg)
    return {p.key: p.message for p in problems}, warnings


def test_a_sound_config_passes_and_a_missing_output_folder_is_fine(base):
    problems, warnings = preflight(base)
    assert problems == {} and not any("output" in w for w in warnings)


def test_precision_and_packages_this_machine_lacks(base, monkeypatch):
    import importlib.util

    import trainer.run.preflight as pf

    monkeypatch.setattr(pf, "_cuda", lambda: (False, False))
    assert "needs an NVIDIA GPU" in preflight({**base, "mixed_precision": "fp16"})[0]["mixed_precision"]
    monkeypatch.setattr(pf, "_cuda", lambda: (True, False))
    assert "no bf16 support" in preflight({**base, "mixed_precision": "bf16"})[0]["mixed_precision"]
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("xformers", "bitsandbytes") else real(name, *a),
    )
    problems, _ = preflight({**base, "xformers": "xformers", "optimizer": "AdamW8bit"})
    assert "xformers is not installed" in problems["xformers"]
    assert "bitsandbytes" in problems["optimizer"]


def test_output_folder_read_only_inside_the_images_or_already_holding_the_file(base, monkeypatch):
    inside = {**base, "output_dir": str(Path(base["train_data_dir"]) / "out")}
    assert "inside the train_data_dir" in preflight(inside)[0]["output_dir"]
    out = Path(base["output_dir"])
    out.mkdir(parents=True)
    (out / "last.safetensors").write_bytes(b"x")
    assert any("already exists and will be replaced" in w for w in preflight(base)[1])
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # tests may run as root
    assert "read-only" in preflight(base)[0]["output_dir"]


@pytest.mark.parametrize("name", ["", "a/b", "..", "CON", "x" * 200, "name "])
def test_output_names_that_cannot_be_files(base, name):
    with pytest.raises(ConfigError) as info:
        config_from_dict({**base, "output_name": name})
    assert "output_name" in info.value.by_key()
