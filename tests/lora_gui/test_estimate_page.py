"""The GPU memory and time estimate on the page (issue 13), in headless Chromium against
`python gui.py --preset presets/demo.json` on the tiny model: it appears under the
dataset summary, follows the "GPU memory (GB)" field and the settings, and speaks both
languages. Its words and layout without a browser: estimate_markdown below."""

from __future__ import annotations

from pathlib import Path

import pytest

from lora_gui.estimate_panel import estimate_markdown

from .gui_server import CHROMIUM, CHROMIUM_ARGS
from .studio_kit import go_tab, open_page, pictures_on_failure, studio, text, wait_until

NOT_FITTING = {
    "peak_vram_gib": 13.7,
    "vram_gib": 12.0,
    "verdict": "does not fit",
    "breakdown_gib": {"weights": 5.1, "activations": 6.0, "optimizer_state": 0.1, "caches": 0.2},
    "advice": [
        {"change": "batch 1", "settings": {"train_batch_size": 1}, "peak_vram_gib": 9.9, "verdict": "fits"}
    ],
    "recommended": "batch 1",
    "gpu": "RTX 3060 12GB",
    "seconds_per_step": 1.25,
    "run_seconds": 3 * 3600 + 5 * 60,
}


def test_the_estimate_says_the_verdict_the_change_and_the_time_in_both_languages():
    en = estimate_markdown(NOT_FITTING, "en")
    assert "13.7 GiB" in en and "does not fit in 12 GB" in en
    assert "Smallest change that fits" in en and "Train batch size" in en and "`1`" in en and "9.9" in en
    assert "1.25 s per step on RTX 3060 12GB" in en and "3 h 5 min" in en
    ja = estimate_markdown(NOT_FITTING, "ja")
    assert "収まりません" in ja and "収まる最小の変更" in ja and "3 時間 5 分" in ja
    assert "does not fit" not in ja and "per step" not in ja


playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_estimates_the_demo_run_and_follows_the_gpu_memory_field(
    request, tmp_path, tiny_model, demo_dataset
):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    with studio(tmp_path, tiny_model("sd15"), demo_dataset) as url, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = open_page(browser, url)
        with pictures_on_failure(request, page):
            _estimate_follows_the_field(page)
        browser.close()


def _estimate_follows_the_field(page) -> None:
    go_tab(page, "Folders", "en")
    said = wait_until(lambda: text(page, "run-estimate"), 120, "the estimate")
    assert "Peak GPU memory about" in said and "per step" in said, said
    vram = page.locator("#gpu-vram input")
    vram.fill("0.1")
    vram.press("Tab")
    wait_until(lambda: "does not fit in 0.1 GB" in text(page, "run-estimate"), 120, "the verdict")
    vram.fill("24")
    vram.press("Tab")
    wait_until(lambda: "fits in 24 GB" in text(page, "run-estimate"), 120, "fits in 24 GB")
    page.get_by_role("radio", name="日本語").click()
    wait_until(lambda: "24 GB に収まります" in text(page, "run-estimate"), 120, "the Japanese estimate")


def test_the_gpu_memory_field_is_filled_from_this_machines_gpu_unless_the_user_typed_one():
    from types import SimpleNamespace

    from lora_gui.estimate_panel import EstimatePanel

    def panel(gib):
        api = SimpleNamespace(gpu_memory_gib=lambda: gib)
        return EstimatePanel(SimpleNamespace(c=SimpleNamespace(api=api)))

    assert panel(11.99).fill_vram(None) == 12.0  # an RTX 3060 says 11.99 GiB
    assert not isinstance(panel(11.99).fill_vram(8), float)  # the user's 8 stays
    assert not isinstance(panel(None).fill_vram(None), float)  # no GPU: left empty


def test_no_estimate_runs_beside_training_in_the_app():
    """The estimate swaps library hooks while it measures: during a run (or the queue) the
    page says it waits, and asks the engine nothing."""
    from types import SimpleNamespace

    from lora_gui.estimate_panel import EstimatePanel

    asked = []
    api = SimpleNamespace(estimate=lambda *a, **k: asked.append(a), make_plan=lambda cfg: None)
    runner = SimpleNamespace(running=True)
    page = SimpleNamespace(c=SimpleNamespace(api=api, runner=runner), lang="lang", queue=None)
    panel = EstimatePanel(page)
    assert "waits until training ends" in panel.on_change({"lang": "en"})
    assert "学習が終わるまで" in panel.on_change({"lang": "ja"})
    runner.running = False
    page.queue = SimpleNamespace(worker=SimpleNamespace(running=lambda: True))
    assert "waits until training ends" in panel.on_change({"lang": "en"}) and not asked
