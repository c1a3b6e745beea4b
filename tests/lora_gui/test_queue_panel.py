"""The page's queue and grid, on the real engine: Add to queue with a sweep, Run queue, the
table in both languages, and the comparison grid of the files the queue saved."""

from __future__ import annotations

import json

from PIL import Image

from lora_gui.app import AppOptions, make_app
from lora_gui.queue_panel import queue_markdown
from tests.helpers import make_toy_dataset, toy_settings
from trainer.config import FIELDS
from trainer.sampling.grid import LABEL_HEIGHT


def test_add_two_runs_run_them_and_render_their_grid(tmp_path, tiny_model):
    from trainer import api

    app = make_app(AppOptions(settings_dir=tmp_path / "settings", user_dir=tmp_path / "presets"), api=api)
    page, panel = app.page, app.page.queue
    data_dir = make_toy_dataset(tmp_path / "data")
    values = {name: spec.default for name, spec in FIELDS.items()}
    values.update(toy_settings(tiny_model("sd15"), data_dir, tmp_path / "out", output_name="page", epoch=1))
    values["save_every_n_epochs"] = 1
    data = {w: values[name] for name, w in page.form.widgets.items()}
    data.update({page.lang: "en", panel.sweep: json.dumps({"network_alpha": [2, 4]})})

    added = panel.on_add(data)
    assert "Added 2 run(s)" in added[panel.message]
    assert "page-network_alpha2" in added[panel.table] and "waiting" in added[panel.table]

    panel.on_run(data)
    panel.worker.thread.join(timeout=300)
    shown = panel.on_tick(data)
    assert shown[panel.table].count("| done |") == 2, shown[panel.table]
    assert "page-network_alpha4.safetensors" in shown[panel.table]
    assert "完了" in queue_markdown(api.queue_read(panel.path), "ja")

    grid_in = {
        **data,
        panel.loras: "",  # every file the queue saved
        panel.prompts: "toy, red square",
        panel.weights: "1.0",
        panel.seed: 1,
        panel.steps: 2,
        panel.size: "64,64",
    }
    out = panel.on_grid(grid_in)
    assert out[panel.grid_msg].startswith("Wrote"), out[panel.grid_msg]
    image = Image.open(out[panel.image])
    assert image.size == (64, 3 * (64 + LABEL_HEIGHT))  # base + 2 files; 1 weight x 1 prompt


def test_a_bad_sweep_and_bad_settings_are_refused_in_words(tmp_path):
    from trainer import api

    app = make_app(AppOptions(settings_dir=tmp_path / "settings", user_dir=tmp_path / "presets"), api=api)
    page, panel = app.page, app.page.queue
    data = {w: FIELDS[name].default for name, w in page.form.widgets.items()}
    data.update({page.lang: "ja", panel.sweep: "{network_alpha: [2"})
    assert "JSON" in panel.on_add(data)[panel.message]
    data[panel.sweep] = ""
    refused = panel.on_add(data)[panel.message]
    assert refused.startswith("追加しませんでした") and "キューは空です" in panel.on_add(data)[panel.table]
