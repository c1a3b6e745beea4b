"""What Kohya users reach for, in the real page: the 📂 picker, the config file at a path
(open, save, download), Print training command, TensorBoard, the tab title."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from .gui_server import CHROMIUM, answers, prepare_demo, running_gui, stop

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
expect.set_options(timeout=30_000)
SECRET = "hf_pagesecrettoken0123456789abcd"


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_model, tiny_single_file, demo_dataset):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    work = tmp_path_factory.mktemp("tools_page")
    prepare_demo(work, tiny_model("sd15"), demo_dataset)
    (work / "models").mkdir()
    shutil.copy(tiny_single_file("sd15"), work / "models" / "tiny.safetensors")
    (work / "models" / "notes.txt").write_text("not a model")
    (work / "home").mkdir()
    return work


@pytest.fixture(scope="module")
def server(work):
    with running_gui(work, env={"HOME": str(work / "home")}) as (url, proc):
        yield url, proc


def open_page(browser, url):
    context = browser.new_context(viewport={"width": 1400, "height": 1800}, locale="en-US")
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.goto(url)
    expect(pg.locator("#start-training")).to_be_visible(timeout=60_000)
    return pg


@pytest.fixture
def page(browser, server):
    pg = open_page(browser, server[0])
    yield pg
    pg.screenshot(path="/tmp/gui_tools_last_test.png", full_page=True)
    pg.context.close()


def markdown(pg, elem_id: str):
    return pg.locator(f"#{elem_id} [data-testid='markdown']")


def textbox(pg, elem_id: str):
    return pg.locator(f"#{elem_id}").get_by_role("textbox")


def load_demo(pg) -> None:
    pg.locator("#preset-choice input").click()
    pg.get_by_role("option", name="demo (shipped)").click()
    pg.locator("#preset-load").click()
    expect(markdown(pg, "preset-message")).to_contain_text("Loaded demo")


def test_the_tab_names_the_app(page):
    assert page.title() == "LoRA Studio"


def test_the_folder_button_browses_the_server_and_fills_the_field(page, work):
    page.get_by_role("tab", name="Folders").click()
    page.locator("#browse-train_data_dir").click()
    picker = page.locator("#file-browser")
    expect(picker).to_be_visible()
    expect(textbox(page, "fb-folder")).to_have_value(str((work / "home").resolve()))  # empty field: home
    folder = textbox(page, "fb-folder")
    folder.fill(str(work))
    folder.press("Enter")
    entries = page.locator("#fb-entries")
    expect(entries.get_by_text("📁 demo")).to_be_visible()
    expect(entries).not_to_contain_text("server-")  # a folder field lists folders only
    entries.get_by_text("📁 demo").click()
    entries.get_by_text("📁 dataset").click()
    expect(textbox(page, "fb-folder")).to_have_value(str((work / "demo" / "dataset").resolve()))
    page.locator("#fb-use-folder").click()
    expect(picker).to_be_hidden()
    expect(textbox(page, "field-train_data_dir")).to_have_value(str((work / "demo" / "dataset").resolve()))
    expect(markdown(page, "dataset-summary")).to_contain_text("5_demochar")  # checked as if typed


def test_the_model_button_shows_only_model_files_and_checks_the_choice(page, work):
    page.locator("#browse-pretrained_model_name_or_path").click()
    folder = textbox(page, "fb-folder")
    folder.fill(str(work / "models"))
    folder.press("Enter")
    entries = page.locator("#fb-entries")
    expect(entries).to_contain_text("tiny.safetensors")
    expect(entries).not_to_contain_text("notes.txt")
    entries.get_by_text(re.compile(r"tiny\.safetensors")).click()
    model = textbox(page, "field-pretrained_model_name_or_path")
    expect(model).to_have_value(str((work / "models" / "tiny.safetensors").resolve()))
    expect(markdown(page, "model-status")).to_contain_text("SD 1.x")
    page.locator("#browse-pretrained_model_name_or_path").click()
    expect(textbox(page, "fb-folder")).to_have_value(str((work / "models").resolve()))  # the field's folder
    page.locator("#fb-cancel").click()
    expect(page.locator("#file-browser")).to_be_hidden()


def test_print_training_command_writes_the_preset_without_the_token(page, work):
    load_demo(page)
    page.get_by_role("tab", name="Advanced").click()
    page.get_by_text("Metadata", exact=True).click()  # a group of advanced fields only
    token = page.locator("#field-huggingface_token input")
    token.fill(SECRET)
    token.press("Tab")
    page.locator("#tools-print").click()
    written = (work / "demo" / "output" / "demo_lora.json").resolve()
    expect(markdown(page, "tools-run-message")).to_contain_text(f"Wrote {written}")
    expect(page.locator("#tools-command")).to_contain_text(f"-m trainer --config {written}")
    text = written.read_text()
    assert json.loads(text)["output_name"] == "demo_lora" and SECRET not in text
    expect(textbox(page, "tools-config-path")).to_have_value(str(written))


def test_a_config_file_at_any_path_saves_opens_and_downloads(page, work):
    load_demo(page)
    target = work / "configs" / "mine.json"
    path = textbox(page, "tools-config-path")
    path.fill(str(target))
    page.locator("#tools-save").click()
    expect(markdown(page, "tools-message")).to_contain_text(f"Saved {target}")
    assert json.loads(target.read_text())["output_name"] == "demo_lora"
    download = page.locator("#tools-download")
    expect(download).to_be_visible()
    with page.expect_download() as got:
        download.click()
    assert json.loads(Path(got.value.path()).read_text())["output_name"] == "demo_lora"
    page.get_by_role("tab", name="Folders").click()
    name = textbox(page, "field-output_name")
    name.fill("changed")
    name.press("Tab")
    page.locator("#tools-open").click()
    expect(markdown(page, "tools-message")).to_contain_text("Loaded mine")
    expect(name).to_have_value("demo_lora")


@pytest.mark.slow  # an app and a real TensorBoard of its own
def test_tensorboard_starts_once_shows_its_link_and_stops_with_the_app(browser, work):
    with running_gui(work, env={"HOME": str(work / "home")}) as (url, proc):
        pg = open_page(browser, url)
        pg.locator("#tools-tensorboard").click()
        expect(markdown(pg, "tools-run-message")).to_contain_text("Set the Logging folder")
        load_demo(pg)
        pg.locator("#tools-tensorboard").click()
        message = markdown(pg, "tools-run-message")
        expect(message).to_contain_text("TensorBoard started")
        link = message.get_by_role("link").get_attribute("href")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", link)
        end = time.monotonic() + 120
        while not answers(link):  # TensorBoard takes a few seconds to load
            assert time.monotonic() < end, "TensorBoard did not answer"
            time.sleep(1)
        pg.locator("#tools-tensorboard").click()
        expect(message).to_contain_text("already running")
        pg.context.close()
        stop(proc)  # Ctrl+C: the app exits and takes TensorBoard with it
        assert proc.returncode is not None
    assert not answers(link)
