"""The queue and grid in the real page (headless Chromium): the demo with a sweep of two
alphas added to the queue, run one after the other, then their comparison grid shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from .gui_server import CHROMIUM, CHROMIUM_ARGS, prepare_demo, running_gui

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # two runs and a grid: the slow step of CI
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_model, demo_dataset):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    work = tmp_path_factory.mktemp("queue_page")
    prepare_demo(work, tiny_model("sd15"), demo_dataset)
    (work / "home").mkdir()  # the app's settings folder (the queue file) goes under it
    return work


def markdown(pg, elem_id: str):
    return pg.locator(f"#{elem_id} [data-testid='markdown']")


def test_two_queued_runs_train_and_their_grid_is_shown(work):
    with (
        running_gui(work, env={"HOME": str(work / "home")}) as (url, _),
        playwright_api.sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 2400}, locale="en-US")
        pg.set_default_timeout(30_000)
        pg.goto(url)
        expect(pg.locator("#start-training")).to_be_visible(timeout=60_000)
        pg.locator("#preset-choice input").click()
        pg.get_by_role("option", name="demo (shipped)").click()
        pg.locator("#preset-load").click()
        expect(markdown(pg, "preset-message")).to_contain_text("Loaded demo")
        pg.get_by_role("tab", name="Parameters").click()
        steps = pg.locator("#field-max_train_steps input")  # short runs
        steps.fill("2")
        steps.press("Tab")

        pg.get_by_text("Queue (runs one after another)").click()
        sweep = pg.locator("#queue-sweep").get_by_role("textbox")
        sweep.fill('{"network_alpha": [2, 4]}')
        pg.locator("#queue-add").click()
        expect(markdown(pg, "queue-message")).to_contain_text("Added 2 run(s)", timeout=60_000)
        expect(markdown(pg, "queue-table")).to_contain_text("demo_lora-network_alpha4")
        pg.locator("#queue-run").click()
        table = markdown(pg, "queue-table")
        expect(table.get_by_role("cell", name="done", exact=True)).to_have_count(2, timeout=300_000)
        expect(table).to_contain_text("demo_lora-network_alpha2.safetensors")

        pg.get_by_text("Comparison grid").click()
        pg.locator("#grid-prompts").get_by_role("textbox").fill("a demo picture")
        pg.locator("#grid-weights").get_by_role("textbox").fill("1.0")
        pg.locator("#grid-size").get_by_role("textbox").fill("64,64")
        pg.locator("#grid-steps input").fill("2")
        pg.locator("#grid-render").click()
        expect(markdown(pg, "grid-message")).to_contain_text("Wrote", timeout=180_000)
        expect(pg.locator("#grid-image img")).to_be_visible()
        pg.screenshot(path="/tmp/gui_queue_page.png", full_page=True)
        browser.close()
    assert list((work / "demo" / "output").glob("grid-*.png"))
