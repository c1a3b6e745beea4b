"""The Utilities tab in the real page: a LoRA typed by its path is resized and offered for download."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .gui_server import CHROMIUM, CHROMIUM_ARGS, running_gui
from .test_utilities import _lora

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


def test_a_lora_is_resized_from_the_page(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    lora = _lora(tmp_path / "mine.safetensors")
    out = tmp_path / "mine-r2.safetensors"
    with running_gui(tmp_path) as (url, _), playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600}, locale="en-US")
        page.set_default_timeout(60_000)
        page.goto(url)
        page.get_by_role("tab", name="Utilities").click()
        page.get_by_role("tab", name="Resize", exact=True).click()
        page.locator("#util-resize-model textarea").fill(str(lora))
        page.locator("#util-resize-rank input").fill("2")
        page.locator("#util-resize-save textarea").fill(str(out))
        page.locator("#util-resize-run").click()
        expect(page.locator("#util-resize-message")).to_contain_text("Done", timeout=120_000)
        expect(page.locator("#util-resize-output textarea")).to_have_value(re.compile("rank 4 -> 2"))
        expect(page.locator("#util-resize-download")).to_be_visible()
        browser.close()
    assert out.is_file()
