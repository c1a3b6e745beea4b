"""The first hour's promises without a browser: presets keep what they do not set, Start
checks everything, messages stay whole, the run speaks the page's language."""

from __future__ import annotations

import threading
import time

from lora_gui.handlers import Controller, loaded_message, preset_record
from lora_gui.panel import error_markdown, logs_text, loss_plot, progress_markdown
from lora_gui.presets import preset_values
from lora_gui.run_state import RunState
from lora_gui.runner import Runner
from lora_gui.summary import plan_markdown
from lora_gui.values import md_text
from trainer.config import validate_values
from trainer.events import Event

from .gui_fakes import FakeApi


def test_a_preset_changes_only_what_it_sets_and_an_empty_path_is_not_set():
    loaded = preset_values({"network_dim": 16, "pretrained_model_name_or_path": "", "train_data_dir": ""})
    assert loaded.changes() == {"network_dim": 16}
    loaded = preset_values({"optimizer": "NotAnOptimizer", "output_dir": "out"})
    assert loaded.changes() == {"output_dir": "out"}
    record = preset_record("mine", loaded)
    ja = loaded_message(record, "ja")
    assert "**mine** を読み込みました" in ja and "今の値のまま" in ja and "**オプティマイザ**" in ja


def test_messages_are_shown_whole_not_read_as_html():
    text = md_text("named <repeats>_<name>, e.g. `<x>`\n  train/50_mychar & more")
    assert text == "named &lt;repeats&gt;_&lt;name&gt;, e.g. `<x>`  \n  train/50_mychar &amp; more"


def test_start_refuses_a_missing_image_folder_with_every_other_problem(tmp_path, values):
    api = FakeApi()
    ctl = Controller(api, user_dir=tmp_path)
    values.update(train_data_dir=str(tmp_path / "nope"), learning_rate=5)
    outcome = ctl.start(values, "en")
    assert not outcome.started and api.runs == []
    assert "**Image folder**: the image folder" in outcome.message and "**Learning rate**" in outcome.message


def test_start_says_the_model_and_plan_apart_from_the_warnings(tmp_path, values):
    ctl = Controller(FakeApi(), user_dir=tmp_path)
    outcome = ctl.start(values, "ja")
    info, _, warnings = outcome.message.partition("開始前の注意")
    assert "モデル: SD 1.x diffusers folder" in info and "画像4枚" in info
    assert "a fake warning" in warnings and "SD 1.x" not in warnings
    assert outcome.said["ja"] == outcome.message and "This run:" in outcome.said["en"]  # for a switch
    assert ctl.runner.wait(5)


def test_the_run_log_and_errors_are_said_in_the_page_language(tmp_path, values):
    runner = Runner(FakeApi(fail_with="CUDA out of memory"))
    runner.start(validate_values(values))
    assert runner.wait(5)
    s = runner.snapshot()
    ja = logs_text(s, "ja")
    assert "計画: 画像4枚" in ja and "エラー: CUDA out of memory" in ja and "Plan:" not in ja
    assert "Plan: 4 images" in logs_text(s, "en")
    assert "エラーで学習が止まりました" in error_markdown(s, "ja")
    silent = Runner(FakeApi(), popen=lambda cmd, **kw: _Dead())
    silent.start(validate_values(values), num_processes=2)
    assert silent.wait(5)
    dead = silent.snapshot()
    assert "exit code -9" in dead.error["message"]
    assert "学習プロセスが理由を告げずに終了しました(終了コード -9)" in error_markdown(dead, "ja")


class _Dead:
    stdout: list = []
    pid = 0

    def wait(self):
        return -9


def test_a_stopped_run_says_how_to_resume_it(tmp_path, values):
    gate = threading.Event()
    runner = Runner(FakeApi(steps=9, gate=gate))
    runner.start(validate_values(values))
    while runner.snapshot().step < 1:
        time.sleep(0.01)
    runner.stop()
    runner.on_event(Event("saved", {"path": "out/x-stopped-1-state", "step": 1, "state": True}))
    gate.set()
    assert runner.wait(5)
    s = runner.snapshot()
    assert s.state_dir == "out/x-stopped-1-state" and s.state_dir not in s.saved
    text = progress_markdown(s, "ja")
    assert "`out/x-stopped-1-state`" in text and "保存した学習状態から再開" in text
    no_state = progress_markdown(RunState(status="stopped", step=3), "en")
    assert "Turn on **Save training state** (Advanced > Save state and resume)" in no_state


def test_the_chart_is_never_sent_an_empty_table():
    assert loss_plot(RunState(), "en") is None
    frame = loss_plot(RunState(losses=[(1, 0.5, 0.5)]), "ja")
    assert sorted(set(frame["series"])) == ["平均", "損失"]


def test_plan_advice_is_said_from_its_notes():
    plan = {
        "warnings": ["One epoch is 34 images x repeats."],
        "notes": [{"code": "few_repeats", "text": "One epoch is 34 images x repeats.", "total": 34}],
    }
    assert "1エポックは画像×繰り返し数で34です" in plan_markdown(plan, "ja")
    assert "One epoch is 34 images x repeats" in plan_markdown(plan, "en")
    odd = {"notes": [{"code": "new_in_the_engine", "text": "Something <new>."}]}
    assert "注意(学習エンジンより): Something &lt;new&gt;." in plan_markdown(odd, "ja")
