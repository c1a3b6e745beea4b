"""Model Quick Pick: common bases with their boxes, the models folder (remembered), and
Start downloading a Hugging Face id first (a fake api: no network here)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from lora_gui.app import AppOptions, make_app
from lora_gui.downloads import DownloadState, ModelDownloads, download_markdown
from lora_gui.models_pick import KNOWN_MODELS, ModelChoices, Settings, flags_for, folder_models
from trainer.config import Problem

from .gui_fakes import FakeApi


def test_the_common_bases_are_offered_with_the_boxes_they_need():
    ids = [m.repo_id for m in KNOWN_MODELS]
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in ids
    assert "stabilityai/stable-diffusion-xl-base-1.0" in ids
    assert sum(1 for m in KNOWN_MODELS if m.sdxl) >= 4  # base + popular derivatives
    assert flags_for("stabilityai/stable-diffusion-2-1") == {
        "v2": True,
        "v_parameterization": True,
        "sdxl": False,
    }
    assert flags_for("stabilityai/stable-diffusion-xl-base-1.0")["sdxl"] is True
    assert flags_for("/some/file.safetensors") == {}


def test_the_models_folder_offers_its_checkpoints_and_is_remembered(tmp_path):
    models = tmp_path / "models"
    (models / "SDXL").mkdir(parents=True)
    (models / "a.safetensors").write_bytes(b"x")
    (models / "SDXL" / "b.ckpt").write_bytes(b"x")
    (models / "notes.txt").write_text("x")
    (models / ".hidden.safetensors").write_bytes(b"x")
    (models / "diffusers-model").mkdir()
    (models / "diffusers-model" / "model_index.json").write_text("{}")
    assert [p.relative_to(models).as_posix() for p in folder_models(models)] == [
        "a.safetensors",
        "diffusers-model",
        "SDXL/b.ckpt",
    ]
    settings = Settings(tmp_path / "settings")
    choices = ModelChoices("demo/model", settings)
    assert choices.set_models_dir(str(tmp_path / "missing")) == "models_dir.missing"
    assert choices.set_models_dir(str(models)) is None
    again = ModelChoices("demo/model", Settings(tmp_path / "settings"))  # the next start of the app
    assert again.models_dir == str(models)
    labels = dict((v, k) for k, v in again.choices("ja"))
    assert labels[str(models / "SDXL" / "b.ckpt")] == "モデルフォルダ: SDXL/b.ckpt"
    assert again.pick_for(str(models / "a.safetensors")) == str(models / "a.safetensors")
    assert again.pick_for("/elsewhere/x.safetensors") == "custom"
    flag = ModelChoices("demo/model", settings, models_dir=str(tmp_path))  # --models-dir wins
    assert flag.models_dir == str(tmp_path)


def test_a_quick_pick_sets_the_path_and_the_boxes(tmp_path):
    app = make_app(AppOptions(user_dir=tmp_path / "u", settings_dir=tmp_path / "s"), FakeApi())
    widgets = app.page.form.widgets
    out = app.events.on_quick_pick("stabilityai/stable-diffusion-2-1")
    assert out[widgets["pretrained_model_name_or_path"]] == "stabilityai/stable-diffusion-2-1"
    assert (out[widgets["v2"]], out[widgets["v_parameterization"]], out[widgets["sdxl"]]) == (
        True,
        True,
        False,
    )
    assert app.events.on_quick_pick("custom") == {}
    models = tmp_path / "models"
    models.mkdir()
    (models / "mine.safetensors").write_bytes(b"x")
    shown = app.page.models.on_models_dir(str(models), "en")
    assert (str(models / "mine.safetensors")) in [v for _, v in shown[app.page.quick_pick]["choices"]]
    assert "1 model(s)" in shown[app.page.models.models_msg]
    assert Settings(tmp_path / "s").read() == {"models_dir": str(models)}


class HubApi(FakeApi):
    """FakeApi with a Hugging Face id "someone/model" that downloads in three steps."""

    def __init__(self, fail: str = "", **kwargs):
        super().__init__(**kwargs)
        self.downloaded = False
        self.fail = fail
        self.tokens: list = []
        self.gate = None

    def model_needs_download(self, path):
        return path == "someone/model" and not self.downloaded

    def download_model(self, repo_id, token=None, on_progress=None):
        self.tokens.append(token)
        for done in (0, 50, 100):
            on_progress(type("P", (), {"done": done, "total": 100})())
            time.sleep(0.01)
        if self.fail:
            raise RuntimeError(self.fail)
        self.downloaded = True
        return "/cache/someone/model"

    def detect_model(self, path):
        if path == "someone/model" and self.downloaded:
            return super().detect_model(str(Path.cwd()))
        return super().detect_model(path)


def wait_until(predicate, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_start_downloads_an_id_first_then_trains(tmp_path, values, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    api = HubApi()
    app = make_app(AppOptions(user_dir=tmp_path / "u", settings_dir=tmp_path / "s"), api)
    page = app.page
    values.update(pretrained_model_name_or_path="someone/model", huggingface_token="hf_tokentokentoken1234")
    message, implied = app.controller.model("someone/model", "en")
    assert "Start training downloads it first" in message and implied == {}
    out = page.models.start_hook(values, "en")
    assert "training starts when it is done" in out[page.run_msg]
    assert page.models.start_hook(values, "en")[page.run_msg].startswith("⏳")  # a second press waits
    assert app.controller.downloads.wait(5)
    wait_until(lambda: not app.controller.runner.running and api.runs)
    assert api.tokens == ["hf_tokentokentoken1234"]
    tick = page.models.on_tick("en")
    assert "Downloaded **someone/model**" in tick[page.models.download_md]
    assert tick[page.timer].active is True  # the run panel follows the run Start began
    assert len(api.runs) == 1 and api.runs[0].pretrained_model_name_or_path == "someone/model"
    assert page.models.start_hook(values, "en") is None  # downloaded: Start as usual


def test_start_checks_the_rest_of_the_form_before_downloading(tmp_path, values):
    api = HubApi(preflight_problems=[Problem("output_dir", "is read-only")])
    app = make_app(AppOptions(user_dir=tmp_path / "u", settings_dir=tmp_path / "s"), api)
    values["pretrained_model_name_or_path"] = "someone/model"
    out = app.page.models.start_hook(values, "en")
    assert "Training did not start" in out[app.page.run_msg] and "is read-only" in out[app.page.run_msg]
    assert api.tokens == []
    values["learning_rate"] = -1
    assert app.page.models.start_hook(values, "en") is None  # Start lists the form's problems


def test_a_failed_download_says_why_without_the_token(tmp_path):
    token = "hf_verysecrettoken123456"
    api = HubApi(fail=f"401 for token {token}: is the model private?")
    downloads = ModelDownloads(api)
    assert downloads.start("someone/model", token)
    assert downloads.wait(5)
    state = downloads.snapshot()
    assert state.status == "failed" and token not in state.message and "private" in state.message
    text = download_markdown(state, "ja")
    assert "ダウンロードに失敗しました" in text and token not in text


def test_the_progress_line_in_both_languages():
    state = DownloadState("downloading", "a/b", done=1_500_000_000, total=6_000_000_000)
    assert download_markdown(state, "en") == "Downloading **a/b**: 25 % (1.5 GB of 6.0 GB)"
    assert "25 %" in download_markdown(state, "ja") and "ダウンロード中" in download_markdown(state, "ja")
    assert download_markdown(DownloadState(), "en") == ""


@pytest.mark.parametrize("busy", [threading.Event()])
def test_only_one_download_at_a_time(busy):
    class Slow(HubApi):
        def download_model(self, repo_id, token=None, on_progress=None):
            busy.wait(5)
            return "x"

    downloads = ModelDownloads(Slow())
    assert downloads.start("someone/model")
    assert not downloads.start("someone/other")
    busy.set()
    assert downloads.wait(5) and downloads.snapshot().status == "done"
