"""The page a Kohya user trusts, defect by defect, in headless Chromium.

Each test drives `python gui.py --preset presets/demo.json` in a scratch folder (see
studio_kit) the way a person does: typing, pasting, pressing Start and Stop, switching to
日本語. When one fails, every tab is photographed in both languages (test-artifacts/).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from trainer.config import FIELDS

from .studio_kit import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LINE_MARKS,
    box,
    choose,
    fill,
    go_tab,
    log_is_at_its_end,
    md,
    open_page,
    paste,
    pictures_on_failure,
    run_ended,
    steps_done,
    studio,
    text,
    unsaid_on_every_tab,
    wait_until,
)

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
expect.set_options(timeout=30_000)  # a busy 2-core machine answers slowly


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_model, demo_dataset):
    """(url, scratch folder) of the app, in English."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    work = tmp_path_factory.mktemp("page_defects")
    with studio(work, tiny_model("sd15"), demo_dataset) as url:
        yield url, work


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(request, browser, site):
    pg = open_page(browser, site[0])
    with pictures_on_failure(request, pg):
        yield pg
    pg.context.close()


def short_run(page, steps: int) -> None:
    go_tab(page, "Parameters", "en")
    fill(page, "max_train_steps", str(steps))


def lines_while_running(page, timeout: float = 240) -> bool:
    """Whether the Loss chart drew both its lines before the run ended."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not run_ended(page):
        if page.locator(LINE_MARKS).count() == 2:
            return True
        time.sleep(0.2)
    return False


# 1 ---------------------------------------------------------------------------------------
def test_the_loss_chart_draws_its_lines_while_training_after_it_and_after_a_reload(page):
    short_run(page, 30)
    page.locator("#start-training").click()
    assert lines_while_running(page), "no loss line while training"
    wait_until(lambda: run_ended(page), 240, "the end of the run")
    assert "100 %" in text(page, "run-progress"), text(page, "run-error")
    expect(page.locator(LINE_MARKS)).to_have_count(2)
    legend = page.evaluate(
        """() => { const block = document.querySelector('#run-loss');
        const legend = block.querySelector('svg [aria-roledescription=legend]');
        if (!legend) return null;
        const b = block.getBoundingClientRect(), l = legend.getBoundingClientRect();
        return {inside: l.top >= b.top && l.bottom <= b.bottom, text: legend.textContent}; }"""
    )
    assert legend and legend["inside"], legend  # the legend is not cut off
    assert "loss" in legend["text"] and "average" in legend["text"]
    page.reload()
    page.locator("#start-training").wait_for()
    expect(page.locator(LINE_MARKS)).to_have_count(2)


# 2 ---------------------------------------------------------------------------------------
def test_loading_a_preset_keeps_the_model_and_folders_and_the_pickers_say_what_is_loaded(page, site):
    expect(page.locator("#preset-choice input")).to_have_value("demo (shipped)")  # opened with it
    model = box(page, "pretrained_model_name_or_path")
    expect(model).to_have_value("demo/model")
    choose(page, "quick-pick", "demo: the tiny test model (demo/model)")
    expect(model).not_to_have_value("demo/model")
    fill(page, "pretrained_model_name_or_path", "demo/model")  # a path of one's own
    expect(page.locator("#quick-pick input")).to_have_value("custom")

    choose(page, "preset-choice", "sd15_character (shipped)")
    page.locator("#preset-load").click()
    expect(md(page, "preset-message")).to_contain_text("Loaded sd15_character")
    expect(page.locator("#preset-choice input")).to_have_value("sd15_character (shipped)")
    expect(model).to_have_value("demo/model")
    go_tab(page, "Folders", "en")
    for name, value in (("train_data_dir", "demo/dataset"), ("output_dir", "demo/output")):
        expect(box(page, name)).to_have_value(value)
    expect(box(page, "output_name")).to_have_value("mychar")  # what the preset sets, it sets

    kohya = site[1] / "kohya_no_paths.json"
    kohya.write_text(json.dumps({"LoRA_type": "Standard", "network_dim": 16, "output_name": "kohya_out"}))
    page.locator("#preset-upload input[type='file']").set_input_files(str(kohya))
    expect(md(page, "preset-message")).to_contain_text("Loaded kohya_no_paths")
    expect(box(page, "output_name")).to_have_value("kohya_out")
    expect(box(page, "train_data_dir")).to_have_value("demo/dataset")
    expect(box(page, "output_dir")).to_have_value("demo/output")
    expect(page.locator("#preset-choice input")).to_have_value("")  # no preset of the list
    go_tab(page, "Source Model", "en")
    expect(model).to_have_value("demo/model")


# 3 ---------------------------------------------------------------------------------------
def test_pasted_paths_are_checked_on_change_and_when_leaving_the_field(page, site):
    status = md(page, "model-status")
    expect(status).to_contain_text("Found")
    paste(page, "pretrained_model_name_or_path", str(site[1] / "gone" / "model.safetensors"))
    expect(status).to_contain_text("Model problem")
    expect(status).not_to_contain_text("Found")

    pasted = site[1] / "pasted_dataset"
    shutil.rmtree(pasted, ignore_errors=True)
    shutil.copytree(site[1] / "demo" / "dataset" / "5_demochar", pasted / "7_pasted")
    go_tab(page, "Folders", "en")
    summary = md(page, "dataset-summary")
    expect(summary).to_contain_text("5_demochar")
    paste(page, "train_data_dir", str(pasted))
    expect(summary).to_contain_text("7_pasted")
    expect(summary).not_to_contain_text("5_demochar")
    shutil.copytree(pasted / "7_pasted", pasted / "2_late")  # the folder changes on the disk
    box(page, "train_data_dir").click()
    box(page, "train_data_dir").press("Tab")  # leaving the field looks again
    expect(summary).to_contain_text("2_late")


# 4 ---------------------------------------------------------------------------------------
def test_start_checks_everything_first_and_shows_each_problem_whole(page, site):
    go_tab(page, "Parameters", "en")
    fill(page, "learning_rate", "5")
    go_tab(page, "Folders", "en")
    fill(page, "train_data_dir", str(site[1] / "no_such_folder"))
    page.locator("#start-training").click()
    message = md(page, "run-message")
    expect(message).to_contain_text("Training did not start")
    expect(message).to_contain_text("Learning rate")  # every problem at once
    expect(message).to_contain_text("does not exist")
    expect(message).to_contain_text("named <repeats>_<name>, with the images")  # not eaten as HTML
    expect(message).to_contain_text("used as the caption of images without a caption file")  # whole
    page.wait_for_timeout(2000)
    assert not text(page, "run-error").strip()
    assert "Starting" not in text(page, "run-progress") and "Training" not in text(page, "run-progress")

    go_tab(page, "Parameters", "en")
    fill(page, "learning_rate", "0.001")
    page.locator("#start-training").click()
    expect(message).not_to_contain_text("Learning rate")  # the old message went
    expect(message).to_contain_text("does not exist")


# 5 ---------------------------------------------------------------------------------------
def test_the_run_panel_follows_its_log_and_says_how_to_go_on_after_stop(page):
    go_tab(page, "Parameters", "en")
    fill(page, "epoch", "6")  # long enough to press Stop on a busy machine
    page.locator("#start-training").click()
    wait_until(lambda: steps_done(page) >= 1 or run_ended(page), 240, "a step")
    page.locator("#stop-training").click()
    wait_until(lambda: "⏹" in text(page, "run-progress"), 120, "the stop")
    progress = md(page, "run-progress")
    expect(progress).to_contain_text("Stopped at step")
    expect(progress).not_to_contain_text("Stopping after the current step")
    expect(md(page, "run-message")).not_to_contain_text("Stopping")
    # no state was saved: how to have one next time, or go on from the file
    expect(progress).to_contain_text("cannot be continued exactly")
    expect(progress).to_contain_text("Save training state")
    expect(progress).to_contain_text("Network weights")
    wait_until(lambda: log_is_at_its_end(page), 10, "the log to show its newest line")
    last = page.locator("#run-logs textarea").input_value().splitlines()[-1]
    assert "Stopped at step" in last
    expect(page.locator("#run-files").get_by_text("-stopped-")).to_be_visible()
    assert not page.locator("#run-files .label-clear-button").first.is_visible()  # no 'x' that only hides
    expect(md(page, "run-files-note")).to_contain_text("Nothing on this page deletes a file")


# 6 ---------------------------------------------------------------------------------------
def test_after_the_switch_to_japanese_every_message_is_japanese(page):
    page.locator("#language").get_by_text("日本語").click()
    expect(md(page, "preset-message")).to_contain_text("demo を読み込みました")
    expect(md(page, "model-status")).to_contain_text("検出: SD 1.x(diffusers形式のフォルダ")
    expect(page.locator("#preset-upload-button")).to_contain_text("Kohya GUIのプリセットを読み込む")
    go_tab(page, "Folders", "ja")
    expect(md(page, "dataset-summary")).to_contain_text("キャプションファイル (.txt) がありません")
    go_tab(page, "Parameters", "ja")
    fill(page, "max_train_steps", "4")
    page.locator("#start-training").click()
    expect(md(page, "run-message")).to_contain_text("今回の学習")
    wait_until(lambda: run_ended(page), 240, "the end of the run")
    expect(md(page, "run-progress")).to_contain_text("完了")
    log = page.locator("#run-logs textarea").input_value()
    assert "計画: 画像8枚" in log and "保存しました" in log and "Saved" not in log, log
    chart = page.locator("#run-loss svg").text_content()
    assert "ステップ" in chart and "損失" in chart and "平均" in chart, chart
    assert unsaid_on_every_tab(page, "ja") == {}
    page.locator("#language").get_by_text("English").click()  # and back: all of it again
    expect(md(page, "run-message")).to_contain_text("This run:")
    expect(page.locator("#run-loss svg [aria-roledescription=legend]")).to_contain_text("average")
    assert "平均" not in page.locator("#run-loss svg").text_content()
    assert unsaid_on_every_tab(page, "en") == {}


# 7 ---------------------------------------------------------------------------------------
OPEN_EVERY_SECTION = """() => { const panel = [...document.querySelectorAll('[role=tabpanel]')]
  .find(p => p.offsetParent); panel.querySelectorAll('button.label-wrap:not(.open)')
  .forEach(b => b.click()); }"""
TAB_HEIGHT = "() => [...document.querySelectorAll('[role=tabpanel]')].find(p => p.offsetParent).offsetHeight"


def test_the_parameters_tab_reads_at_1400px_with_help_on_demand(page):
    go_tab(page, "Parameters", "en")
    page.evaluate(OPEN_EVERY_SECTION)
    page.wait_for_timeout(1500)
    height = page.evaluate(TAB_HEIGHT)  # 4,197 px before (5,699 px the whole page)
    assert height < 3300, f"the Parameters tab is {height} px tall with every section open"
    lycoris = [n for n, spec in FIELDS.items() if spec.group == "LyCORIS" and spec.type is bool]
    checks = [
        page.locator(f"#field-{name}").evaluate(
            """f => { const label = f.querySelector('label'), words = f.querySelector('.label-text');
            return {id: f.id, width: f.getBoundingClientRect().width,
                    clipped: label.scrollWidth > label.clientWidth + 1
                             || words.getBoundingClientRect().height > 30}; }"""
        )
        for name in lycoris
    ]
    assert len(checks) == 10 and all(c["width"] >= 200 and not c["clipped"] for c in checks), checks
    info = page.locator("#field-optimizer .info-text")
    one_line = info.evaluate("e => e.getBoundingClientRect().height")
    assert one_line < 24, one_line  # help is one line under the label ...
    expect(info).to_have_attribute("title", FIELDS["optimizer"].help)  # ... all of it in its tooltip
    page.locator("#field-optimizer").hover()
    assert info.evaluate("e => e.getBoundingClientRect().height") == one_line  # nothing moves
    page.locator("#help-toggle input").check()  # or always, for those who read it all
    assert info.evaluate("e => e.getBoundingClientRect().height") > 2 * one_line


# 10 --------------------------------------------------------------------------------------
def test_start_says_what_it_found_apart_from_what_it_warns_about(page, site):
    out = site[1] / "demo" / "output"
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo_lora.safetensors").write_bytes(b"an older file")  # something to warn about
    short_run(page, 2)
    page.locator("#start-training").click()
    message = md(page, "run-message")
    expect(message).to_contain_text("This run:")
    wait_until(lambda: run_ended(page), 240, "the end of the run")
    said = text(page, "run-message")
    info, _, warnings = said.partition("Warnings before the start:")
    assert "Model: SD 1.x (diffusers folder" in info and "8 images" in info, said
    assert "already exists" in warnings and "SD 1.x" not in warnings, said
