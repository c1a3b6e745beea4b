"""Model Quick Pick and the download on Start, in the real page, from a Hub on 127.0.0.1.

gui.py runs with HF_ENDPOINT pointing at tests/hub_server.py (the tiny SD1.5 model in the
Hub's layout, plus a large root checkpoint that must never be fetched) and its own
HF_HUB_CACHE and HOME, so nothing reaches the real Hugging Face or the user's folders.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.hub_server import FakeHub, repo_from_folder

from .gui_server import CHROMIUM, CHROMIUM_ARGS, prepare_demo, running_gui

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
expect.set_options(timeout=30_000)
REPO = "demo/tiny-sd15"
VAE = "vae/diffusion_pytorch_model.safetensors"
TEXT_ENCODER = "text_encoder/model.safetensors"


@pytest.fixture(scope="module")
def hub(tiny_model):
    files = repo_from_folder(tiny_model("sd15"))
    files["tiny-pruned.safetensors"] = b"x" * 200_000  # the root single file: not needed
    server = FakeHub({REPO: files}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_model, tiny_single_file, demo_dataset):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    work = tmp_path_factory.mktemp("download_page")
    prepare_demo(work, tiny_model("sd15"), demo_dataset)
    (work / "models" / "SDXL").mkdir(parents=True)
    shutil.copy(tiny_single_file("sd15"), work / "models" / "tiny.safetensors")
    (work / "models" / "SDXL" / "other.ckpt").write_bytes(b"x")
    (work / "home").mkdir()
    return work


@pytest.fixture(scope="module")
def server(work, hub):
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_CACHE": str(work / "hf-cache"),
        "HOME": str(work / "home"),
        "HF_TOKEN": "",
    }
    with running_gui(work, ["--models-dir", str(work / "models")], env) as (url, _):
        yield url


@pytest.fixture
def page(server):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1800}, locale="en-US")
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        pg.goto(server)
        expect(pg.locator("#start-training")).to_be_visible(timeout=60_000)
        yield pg
        pg.screenshot(path="/tmp/gui_download_last_test.png", full_page=True)
        browser.close()


def markdown(pg, elem_id: str):
    return pg.locator(f"#{elem_id} [data-testid='markdown']")


def model_box(pg):
    return pg.locator("#field-pretrained_model_name_or_path").get_by_role("textbox")


def checkbox(pg, name: str):
    return pg.locator(f"#field-{name} input[type='checkbox']")


def pick(pg, label: str) -> None:
    pg.locator("#quick-pick input").click()
    pg.get_by_role("option", name=label).click()


def test_quick_pick_offers_the_common_bases_and_the_models_folder(page, work):
    pick(page, "SD 2.1 768 v · stabilityai/stable-diffusion-2-1 (Hugging Face)")
    expect(model_box(page)).to_have_value("stabilityai/stable-diffusion-2-1")
    expect(checkbox(page, "v2")).to_be_checked()
    expect(checkbox(page, "v_parameterization")).to_be_checked()
    expect(checkbox(page, "sdxl")).not_to_be_checked()
    expect(markdown(page, "model-status")).to_contain_text("Start training downloads it first")
    pick(page, "Juggernaut XL v9 (SDXL) · RunDiffusion/Juggernaut-XL-v9 (Hugging Face)")
    expect(checkbox(page, "sdxl")).to_be_checked()
    expect(checkbox(page, "v2")).not_to_be_checked()
    pick(page, "models folder: tiny.safetensors")
    expect(model_box(page)).to_have_value(str(work / "models" / "tiny.safetensors"))
    expect(markdown(page, "model-status")).to_contain_text("SD 1.x")
    expect(checkbox(page, "sdxl")).not_to_be_checked()
    page.locator("#quick-pick input").click()
    expect(page.get_by_role("option", name="models folder: SDXL/other.ckpt")).to_be_visible()


def test_a_new_models_folder_is_used_and_remembered(page, work):
    more = work / "more-models"
    more.mkdir()
    (more / "fresh.safetensors").write_bytes(b"x")
    folder = page.locator("#models-dir").get_by_role("textbox")
    folder.fill(str(more))
    folder.press("Enter")
    expect(markdown(page, "models-dir-message")).to_contain_text("1 model(s)")
    page.locator("#quick-pick input").click()
    expect(page.get_by_role("option", name="models folder: fresh.safetensors")).to_be_visible()
    settings = json.loads((work / "home" / ".lora_gui" / "settings.json").read_text())
    assert settings == {"models_dir": str(more)}


def wait_for_text(pg, elem_id: str, texts: tuple[str, ...], timeout: float) -> str:
    end = time.monotonic() + timeout
    while True:
        shown = " ".join(markdown(pg, elem_id).all_inner_texts())
        if any(t in shown for t in texts) or time.monotonic() > end:
            return shown
        pg.wait_for_timeout(300)


@pytest.mark.slow  # a download, a failure, a resume and a run
def test_start_downloads_the_id_with_progress_resumes_after_a_failure_and_trains(page, hub, work):
    page.locator("#preset-choice input").click()
    page.get_by_role("option", name="demo (shipped)").click()
    page.locator("#preset-load").click()
    expect(markdown(page, "preset-message")).to_contain_text("Loaded demo")
    expect(markdown(page, "model-status")).to_contain_text("demo/model")  # the preset's check is done
    model_box(page).fill("")
    model_box(page).press_sequentially(REPO)  # typed: Gradio's textbox sends no input event for fill()
    model_box(page).press("Tab")
    expect(markdown(page, "model-status")).to_contain_text("is not downloaded yet")
    page.get_by_role("tab", name="Parameters").click()
    steps = page.locator("#field-max_train_steps input")
    steps.fill("2")
    steps.press("Tab")

    hub.fail = {VAE}  # the connection breaks on one file: the others arrive
    page.locator("#start-training").click()
    expect(markdown(page, "run-message")).to_contain_text("Downloading the base model first")
    shown = wait_for_text(page, "model-download", ("failed",), timeout=120)
    assert f"Download of {REPO} failed" in shown and "Press Start again to resume" in shown, shown
    assert len(hub.gets(TEXT_ENCODER)) == 1

    hub.fail = set()
    page.locator("#start-training").click()
    shown = wait_for_text(page, "model-download", ("Downloaded",), timeout=120)
    assert f"Downloaded {REPO}" in shown, shown
    progress = wait_for_text(page, "run-progress", ("100 %",), timeout=240)
    error = " ".join(markdown(page, "run-error").all_inner_texts())
    assert "100 %" in progress and not error.strip(), (progress, error)
    assert len(hub.gets(TEXT_ENCODER)) == 1  # resumed: what arrived before is not fetched again
    assert len(hub.gets(VAE)) == 2 and not hub.gets("tiny-pruned.safetensors")
    assert (work / "demo" / "output" / "demo_lora.safetensors").is_file()
    snapshot = next((work / "hf-cache" / "models--demo--tiny-sd15" / "snapshots").iterdir())
    assert not (snapshot / "tiny-pruned.safetensors").exists()
