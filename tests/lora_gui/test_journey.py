"""The first hour of a Kohya user, start to end, in English and in Japanese.

One journey per language, on `python gui.py --preset presets/demo.json` (plus `--lang ja`
for Japanese, with an English browser, so the page's language is the app's choice):
the demo -> Start -> the loss chart draws -> Stop -> resume with the value the page
shows -> a shipped preset keeps the model and folders -> a Kohya GUI file -> bad input
refused at Start -> every tab in the page's language. When it fails, every tab is
photographed in both languages (test-artifacts/<test>/).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lora_gui.i18n import field_label, t
from trainer.config import FIELDS

from .gui_server import CHROMIUM
from .studio_kit import (
    LINE_MARKS,
    box,
    choose,
    fill,
    go_tab,
    md,
    open_page,
    pictures_on_failure,
    run_ended,
    steps_done,
    studio,
    text,
    tick,
    unsaid_on_every_tab,
    wait_until,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # two full journeys: the slow step of CI
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module", params=["en", "ja"])
def site(request, tmp_path_factory, tiny_model, demo_dataset):
    """(language, url, scratch folder) of the app opened in that language."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    lang = request.param
    work = tmp_path_factory.mktemp(f"journey_{lang}")
    flags = ("--lang", "ja") if lang == "ja" else ()
    with studio(work, tiny_model("sd15"), demo_dataset, *flags) as url:
        yield lang, url, work


@pytest.fixture
def page(request, browser, site):
    pg = open_page(browser, site[1])
    with pictures_on_failure(request, pg):
        yield pg
    pg.context.close()


def plain(markdown: str) -> str:
    """A table text as the page shows it (no ** or `)."""
    return re.sub(r"[*`]", "", markdown)


def test_the_first_hour_of_a_kohya_user(page, site):
    lang, _, work = site

    def say(key: str, **data) -> str:
        return plain(t(key, lang, **data))

    # The demo is loaded, and both the page and the Preset dropdown say so.
    expect(page.locator("#preset-choice input")).to_have_value(say("preset.shipped", name="demo"))
    expect(md(page, "preset-message")).to_contain_text(say("preset.loaded", name="demo"))
    expect(md(page, "model-status")).to_contain_text(say("model.found", message="SD 1.x"))

    # Start with the training state saved; the loss chart draws while it trains; Stop.
    go_tab(page, "Parameters", lang)
    fill(page, "epoch", "6")  # long enough to press Stop on a busy machine
    go_tab(page, "Advanced", lang)
    tick(page, "save_state")
    page.locator("#start-training").click()
    expect(md(page, "run-message")).to_contain_text(say("run.info"))
    wait_until(lambda: steps_done(page) >= 1 and page.locator(LINE_MARKS).count() == 2, 240, "the curve")
    page.locator("#stop-training").click()
    wait_until(lambda: "⏹" in text(page, "run-progress"), 120, "the stop")
    progress = md(page, "run-progress")
    expect(progress).not_to_contain_text(say("run.stopping"))
    state = page.locator("#run-progress code").last.inner_text()  # the Resume value to use
    assert re.search(r"demo_lora-stopped-\d+-state$", state), text(page, "run-progress")
    assert (work / state).is_dir()

    # Resume with the value shown: the run goes on to its end.
    fill(page, "resume", state)
    page.locator("#start-training").click()
    wait_until(lambda: "⏹" not in text(page, "run-progress"), 60, "the new run")  # the old one's words go
    wait_until(lambda: run_ended(page), 240, "the resumed run's end")
    assert "100 %" in text(page, "run-progress"), text(page, "run-error")
    expect(page.locator(LINE_MARKS)).to_have_count(2)
    assert state in page.locator("#run-logs textarea").input_value()  # "Resumed from ..."
    fill(page, "resume", "")

    # A shipped preset: what it sets changes, the model and the folders stay.
    choose(page, "preset-choice", say("preset.shipped", name="sd15_character"))
    page.locator("#preset-load").click()
    expect(md(page, "preset-message")).to_contain_text(say("preset.loaded", name="sd15_character"))
    expect(page.locator("#preset-choice input")).to_have_value(say("preset.shipped", name="sd15_character"))
    go_tab(page, "Folders", lang)
    expect(box(page, "output_name")).to_have_value("mychar")
    expect(box(page, "train_data_dir")).to_have_value("demo/dataset")
    expect(box(page, "output_dir")).to_have_value("demo/output")

    # A Kohya GUI file without paths, dropped on the page: the same.
    kohya = work / "my_kohya_settings.json"
    kohya.write_text(json.dumps({"LoRA_type": "Standard", "network_dim": 32, "network_alpha": 16}))
    page.locator("#preset-upload input[type='file']").set_input_files(str(kohya))
    expect(md(page, "preset-message")).to_contain_text(say("preset.loaded", name="my_kohya_settings"))
    expect(box(page, "train_data_dir")).to_have_value("demo/dataset")
    go_tab(page, "Source Model", lang)
    expect(box(page, "pretrained_model_name_or_path")).to_have_value("demo/model")
    go_tab(page, "Parameters", lang)
    expect(box(page, "network_dim")).to_have_value("32")

    # Bad input is refused at Start, every problem at once, each message whole.
    go_tab(page, "Folders", lang)
    fill(page, "train_data_dir", str(work / "not_there"))
    page.locator("#start-training").click()
    message = md(page, "run-message")
    expect(message).to_contain_text(say("run.not_started"))
    expect(message).to_contain_text("<repeats>_<name>")
    for name in ("train_data_dir", "mixed_precision", "optimizer"):  # fp16, AdamW8bit: no GPU here
        expect(message).to_contain_text(field_label(FIELDS[name], lang))
    page.wait_for_timeout(1500)
    expect(md(page, "run-progress")).to_contain_text(say("run.idle"))
    assert not text(page, "run-error").strip()

    # Every tab speaks the page's language.
    assert unsaid_on_every_tab(page, lang) == {}
