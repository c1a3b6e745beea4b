"""scripts/make_tiny_model.py and scripts/make_demo_dataset.py, from the command line and in-process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file

from tests.helpers import ROOT

IMAGE_SUFFIXES = {".png", ".jpg"}


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_make_tiny_model_main_is_deterministic(tmp_path: Path, tiny_model_dir: Path, script) -> None:
    # In-process: a subprocess would spend most of its time importing diffusers.
    out = tmp_path / "tiny"
    assert script("make_tiny_model").main(["--arch", "sd15", "--out", str(out)]) == 0
    assert (out / "model_index.json").is_file()
    for part in ("unet", "vae", "text_encoder"):
        name = "model.safetensors" if part == "text_encoder" else "diffusion_pytorch_model.safetensors"
        fresh, fixture = load_file(out / part / name), load_file(tiny_model_dir / part / name)
        assert fresh.keys() == fixture.keys()
        assert all(torch.equal(fresh[key], fixture[key]) for key in fresh), part


def test_other_seed_gives_other_weights(tiny_model_dir: Path) -> None:
    from trainer.models.tiny import build_tiny_pipeline

    other = build_tiny_pipeline("sd15", seed=1).unet.state_dict()
    fixture = load_file(tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors")
    assert not torch.equal(other["conv_in.weight"], fixture["conv_in.weight"])


def test_make_tiny_model_single_file_from_the_command_line(tmp_path: Path) -> None:
    result = run_script(
        "make_tiny_model.py", "--arch", "sdxl", "--format", "single-file", "--out", str(tmp_path / "m")
    )
    assert result.returncode == 0, result.stderr
    written = tmp_path / "m" / "tiny-sdxl.safetensors"
    keys = load_file(written).keys()
    assert any(k.startswith("conditioner.embedders.1.model.") for k in keys)
    assert any(k.startswith("model.diffusion_model.input_blocks.") for k in keys)
    result = run_script("make_tiny_model.py", "--arch", "sd3", "--out", str(tmp_path / "m"))
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_demo_dataset_is_a_kohya_dataset(demo_dataset: Path) -> None:
    folders = sorted(p.name for p in demo_dataset.iterdir())
    assert folders == ["3_demostyle", "5_demochar"]
    images = sorted(p for p in demo_dataset.glob("*/*") if p.suffix in IMAGE_SUFFIXES)
    assert 6 <= len(images) <= 10
    assert {p.suffix for p in images} == IMAGE_SUFFIXES
    sizes = [Image.open(p).size for p in images]
    assert len({round(w / h, 2) for w, h in sizes}) >= 3  # several aspect-ratio buckets
    assert all(64 <= min(w, h) and max(w, h) <= 320 for w, h in sizes)
    uncaptioned = [p for p in images if not p.with_suffix(".txt").exists()]
    assert len(uncaptioned) == 1
    for image in images:
        caption_file = image.with_suffix(".txt")
        if caption_file.exists():
            tags = [t.strip() for t in caption_file.read_text(encoding="utf-8").splitlines()[0].split(",")]
            class_token = image.parent.name.split("_", 1)[1]
            assert tags[0] == class_token and len(tags) >= 3 and all(tags)


def test_make_demo_dataset_cli_same_seed_same_images(tmp_path: Path, demo_dataset: Path) -> None:
    result = run_script("make_demo_dataset.py", "--out", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    for original in demo_dataset.glob("*/*"):
        copy = tmp_path / "demo" / original.parent.name / original.name
        assert copy.read_bytes() == original.read_bytes(), original.name
