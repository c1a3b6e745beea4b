"""The comparison grid: base row + one row per LoRA file, weight x prompt columns, labelled."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.helpers import make_toy_dataset, toy_settings, train_with_losses
from trainer.__main__ import main
from trainer.sampling.grid import LABEL_HEIGHT


def test_the_grid_has_a_row_per_file_and_its_lora_cells_differ_from_the_base(tmp_path, tiny_model):
    model = tiny_model("sd15")
    data = make_toy_dataset(tmp_path / "data")
    values = toy_settings(model, data, tmp_path / "out", epoch=2, save_every_n_epochs=1, learning_rate=0.05)
    values.update(unet_lr=0.05)
    assert train_with_losses(values)[0] == 0
    files = [tmp_path / "out" / "toy-000001.safetensors", tmp_path / "out" / "toy.safetensors"]
    out = tmp_path / "grid.png"
    args = ["grid", "--model", str(model), "--lora", *map(str, files), "--prompt", "toy, red square"]
    args += ["--prompt", "toy", "--weights", "0.5", "1.0", "--seed", "1", "--steps", "2"]
    assert main([*args, "--size", "64,64", "--out", str(out)]) == 0

    grid = np.asarray(Image.open(out).convert("RGB")).astype(int)
    rows, cols, cell_h = 3, 4, 64 + LABEL_HEIGHT  # base + 2 files; 2 weights x 2 prompts
    assert grid.shape == (rows * cell_h, cols * 64, 3)

    def cell(r, c):
        return grid[r * cell_h : (r + 1) * cell_h, c * 64 : (c + 1) * 64]

    for r in range(rows):
        for c in range(cols):
            label = cell(r, c)[:LABEL_HEIGHT]
            assert (label < 128).any(), f"cell {r},{c} has no label"
    base = cell(0, 3)[LABEL_HEIGHT:]
    assert (cell(0, 1)[LABEL_HEIGHT:] == base).all()  # the base row is the same for every weight
    assert np.abs(cell(2, 3)[LABEL_HEIGHT:] - base).mean() > 0.5  # the final LoRA at 1.0 vs base
    assert np.abs(cell(2, 3)[LABEL_HEIGHT:] - cell(2, 1)[LABEL_HEIGHT:]).mean() > 0  # weight 1.0 vs 0.5


def test_a_missing_lora_file_is_refused_by_name(tmp_path, capsys):
    args = ["grid", "--model", "m", "--lora", str(tmp_path / "nope.safetensors"), "--prompt", "x"]
    assert main(args) == 2
    assert "nope.safetensors does not exist" in capsys.readouterr().err
