"""The real page in headless Chromium: `python gui.py` in a subprocess, driven by Playwright.

The server runs in a scratch folder holding demo/model and demo/dataset, so the shipped
demo preset (relative paths) trains there and nothing is written into the project.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .gui_fakes import free_port
from .gui_server import wait_for

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed: pip install -e .[dev]"
)
expect = playwright_api.expect
expect.set_options(timeout=30_000)  # a busy 2-core CI machine answers slowly

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("LORA_STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_MISSING = "chromium not found: apt-get install chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path("/tmp/gui.png")
LAST_PAGE = Path("/tmp/gui_last_test.png")


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model, demo_dataset):
    """(url, scratch folder) of `python gui.py` serving on a free localhost port."""
    if not Path(CHROMIUM).exists():
        pytest.skip(CHROMIUM_MISSING)
    work = tmp_path_factory.mktemp("gui_e2e")
    port = free_port()
    log = work / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "gui.py"), "--port", str(port), "--presets-dir", str(work / "user")],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # the model is built while the server imports gradio
        shutil.copytree(tiny_model("sd15"), work / "demo" / "model")
        shutil.copytree(demo_dataset, work / "demo" / "dataset")
        url = f"http://127.0.0.1:{port}/"
        wait_for(url, proc, log)
        yield url, work
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1800}, locale="en-US")
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.goto(server[0])
    expect(pg.locator("#start-training")).to_be_visible(timeout=60_000)
    yield pg
    pg.screenshot(path=str(LAST_PAGE), full_page=True)  # what the page showed, for failures
    context.close()


def text_of(pg, elem_id: str):
    """The Markdown inside a component (not Gradio's hidden status overlay beside it)."""
    return pg.locator(f"#{elem_id} [data-testid='markdown']")


def wait_for_the_end(pg, timeout: float) -> tuple[str, str]:
    """(progress text, error text) once the run reaches 100 % or shows an error."""
    end = time.monotonic() + timeout
    while True:
        progress = " ".join(text_of(pg, "run-progress").all_inner_texts())
        error = " ".join(text_of(pg, "run-error").all_inner_texts())
        if "100 %" in progress or error.strip() or time.monotonic() > end:
            return progress, error
        pg.wait_for_timeout(500)


def load_preset(pg, name: str) -> None:
    pg.locator("#preset-choice input").click()
    pg.get_by_role("option", name=f"{name} (shipped)").click()
    pg.locator("#preset-load").click()
    expect(text_of(pg, "preset-message")).to_contain_text(f"Loaded {name}")
    expect(pg.locator("#field-pretrained_model_name_or_path").get_by_role("textbox")).to_have_value(
        "demo/model"
    )


def test_an_invalid_learning_rate_is_shown_next_to_the_field_and_nothing_starts(page, server):
    load_preset(page, "demo")
    page.get_by_role("tab", name="Parameters").click()
    lr = page.locator("#field-learning_rate input")
    lr.fill("5")
    lr.press("Tab")
    errors = page.locator("#errors-Parameters-Optimizer")
    expect(errors).to_contain_text("Learning rate: 5 is not allowed")
    page.locator("#start-training").click()
    expect(text_of(page, "run-message")).to_contain_text("Training did not start")
    expect(text_of(page, "run-message")).to_contain_text("Learning rate")
    page.wait_for_timeout(1500)
    expect(text_of(page, "run-progress")).to_contain_text("Ready.")
    assert not (server[1] / "demo" / "output").exists()


def test_switching_to_japanese_shows_japanese_labels(page):
    page.locator("#language").get_by_text("日本語").click()
    tab = page.get_by_role("tab", name="パラメータ (Parameters)")
    expect(tab).to_be_visible(timeout=20_000)
    tab.click()
    expect(page.locator("#field-learning_rate")).to_contain_text("学習率")
    expect(page.locator("#start-training")).to_contain_text("学習開始")


def test_the_demo_trains_to_100_percent_and_offers_the_file(page, server):
    for name in ("Source Model", "Folders", "Parameters", "Advanced"):
        expect(page.get_by_role("tab", name=name)).to_be_visible()
    load_preset(page, "demo")
    page.get_by_role("tab", name="Folders").click()
    expect(text_of(page, "dataset-summary")).to_contain_text("5_demochar")
    page.get_by_role("tab", name="Parameters").click()
    steps = page.locator("#field-max_train_steps input")  # a short run keeps the test quick
    steps.fill("3")
    steps.press("Tab")
    page.get_by_role("tab", name="Samples").click()  # one tiny sample image at the end
    every = page.locator("#field-sample_every_n_steps input")
    every.fill("3")
    every.press("Tab")
    prompts = page.locator("#field-sample_prompts textarea")
    prompts.fill("a demo picture --w 64 --h 64 --s 2")
    prompts.press("Tab")
    page.locator("#start-training").click()
    progress, error = wait_for_the_end(page, timeout=240)
    assert "100 %" in progress and not error.strip(), (progress, error)
    files = page.locator("#run-files")
    expect(files.get_by_role("cell", name="demo_lora.safetensors")).to_be_visible()
    expect(files.get_by_role("link")).to_have_attribute("href", re.compile(r"/demo_lora\.safetensors$"))
    assert (server[1] / "demo" / "output" / "demo_lora.safetensors").is_file()
    samples = page.locator("#run-samples")
    expect(samples).to_contain_text("Step 3: a demo picture")
    image = samples.locator("img").first
    expect(image).to_be_visible()
    served = page.request.get(image.get_attribute("src"))
    assert served.ok and served.body()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((server[1] / "demo" / "output" / "sample").glob("*.png"))
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_a_kohya_gui_preset_dropped_on_the_page_fills_the_form_and_says_what_changed(page, server):
    kohya = server[1] / "kohya_lokr.json"
    kohya.write_text(
        json.dumps(
            {
                "LoRA_type": "Kohya LoKr",
                "network_dim": 100000,
                "factor": 8,
                "optimizer": "Prodigy",
                "optimizer_args": '"d_coef=1.0" "decouple=True"',
                "learning_rate": "1",
                "unet_lr": "1",
                "text_encoder_lr": "1",
                "min_timestep": 100,
                "max_timestep": 900,
                "mixed_precision": "no",
                "additional_parameters": "--log_prefix=mine --max_grad_norm=0.5",
                "model_list": "custom",
                "sdxl_no_half_vae": True,
                "use_wandb": False,
            }
        ),
        encoding="utf-8",
    )
    page.locator("#preset-upload input[type='file']").set_input_files(str(kohya))
    message = text_of(page, "preset-message")
    expect(message).to_contain_text("'Kohya LoKr' -> 'LyCORIS/LoKr'", timeout=60_000)
    expect(message).to_contain_text("optimizer_args: quotes removed")
    expect(message).to_contain_text("--log_prefix=mine")  # named, not used
    page.get_by_role("tab", name="Parameters").click()
    expect(page.locator("#field-network_dim input")).to_have_value("100000")
    expect(page.locator("#field-LoRA_type input")).to_have_value("LyCORIS/LoKr")
    page.get_by_role("tab", name="Advanced").click()
    page.get_by_text("More Noise and loss settings").click()
    expect(page.locator("#field-min_timestep input")).to_have_value("100")
