"""In the real page: the files a run made download, and nothing else does.

`python gui.py` serves the demo (relative folders, in a scratch folder); a short run
saves a LoRA and one sample image. Both download from the page; /etc/passwd, the presets
folder, a preset in it, the output folder and a file beside the saved LoRA that the app
did not make are refused.
"""

from __future__ import annotations

import re
import shutil
import time

import pytest

from tests.lora_gui.live_app import launch_chromium, need_chromium, start_app, write_demo_preset

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed: pip install -e .[dev]"
)
expect = playwright_api.expect
expect.set_options(timeout=30_000)  # a busy 2-core machine answers slowly


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model, demo_dataset):
    """(url, scratch folder) of the app, with the demo set up for 3 steps and a sample."""
    need_chromium()
    work = tmp_path_factory.mktemp("served")
    shutil.copytree(tiny_model("sd15"), work / "demo" / "model")
    shutil.copytree(demo_dataset, work / "demo" / "dataset")
    preset = write_demo_preset(
        work / "short.json",
        max_train_steps=3,
        sample_every_n_steps=3,
        sample_prompts="a demo picture --w 64 --h 64 --s 2",
    )
    app = start_app(work, "--preset", str(preset))
    try:
        yield app.url, work
    finally:
        app.close()


@pytest.fixture(scope="module")
def page(served):
    with playwright_api.sync_playwright() as p:
        browser = launch_chromium(p)
        pg = browser.new_page(viewport={"width": 1400, "height": 1800}, locale="en-US")
        pg.set_default_timeout(30_000)
        pg.goto(served[0])
        expect(pg.locator("#start-training")).to_be_visible(timeout=60_000)
        yield pg
        browser.close()


def run_to_the_end(pg, timeout: float = 240) -> None:
    pg.locator("#start-training").click()
    progress = pg.locator("#run-progress [data-testid='markdown']")
    end = time.monotonic() + timeout
    while "100 %" not in " ".join(progress.all_inner_texts()):
        error = " ".join(pg.locator("#run-error [data-testid='markdown']").all_inner_texts())
        assert not error.strip() and time.monotonic() < end, (progress.all_inner_texts(), error)
        pg.wait_for_timeout(500)


def test_the_runs_files_download_and_nothing_else_does(page, served):
    url, work = served
    run_to_the_end(page)
    out = (work / "demo" / "output").resolve()
    lora = out / "demo_lora.safetensors"
    files = page.locator("#run-files")
    expect(files.get_by_role("cell", name="demo_lora.safetensors")).to_be_visible()
    link = files.get_by_role("link").first
    expect(link).to_have_attribute("href", re.compile(r"/demo_lora\.safetensors$"))
    got = page.request.get(link.get_attribute("href"))
    assert got.ok and got.body() == lora.read_bytes()
    image = page.locator("#run-samples img").first
    expect(image).to_be_visible()
    got = page.request.get(image.get_attribute("src"))
    assert got.ok and got.body()[:8] == b"\x89PNG\r\n\x1a\n"

    (work / "user").mkdir(exist_ok=True)
    mine = work / "user" / "mine.json"
    mine.write_text("{}", encoding="utf-8")
    beside = out / "notes.txt"
    beside.write_text("written by someone else", encoding="utf-8")
    for path in ("/etc/passwd", work / "user", mine, out, beside, work / "short.json"):
        got = page.request.get(f"{url}gradio_api/file={path}")
        assert got.status == 403, (path, got.status)
