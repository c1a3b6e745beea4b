"""Kohya's tools: config file at a path, the training command, one TensorBoard."""

from __future__ import annotations

import json
import shlex
import sys

import pytest

from lora_gui.app import AppOptions, make_app
from lora_gui.tools import (
    TensorBoard,
    ToolError,
    config_path,
    default_config_path,
    save_config,
    training_command,
)

from .gui_fakes import FakeApi

SECRET = "hf_thisisasecrettoken0123456789"


def test_a_config_file_is_saved_where_the_user_says_without_secrets(tmp_path, values):
    values["huggingface_token"] = SECRET
    target = tmp_path / "somewhere" / "else" / "mine.json"
    saved = save_config(values, config_path(str(target)), "en")
    data = json.loads(saved.read_text())
    assert saved == target and data["output_name"] == "mylora"
    assert SECRET not in saved.read_text() and "huggingface_token" not in data
    with pytest.raises(ToolError) as bad:
        config_path(str(tmp_path / "mine.txt"))
    assert bad.value.key == "tools.not_json"
    with pytest.raises(ToolError) as invalid:
        save_config({**values, "learning_rate": -1}, target, "en")
    assert invalid.value.key == "tools.invalid" and "Learning rate" in invalid.value.extra["problems"]


def test_the_training_command_uses_the_preset_it_writes(tmp_path, values):
    assert default_config_path(values) == str(tmp_path / "out" / "mylora.json")
    assert default_config_path({**values, "output_dir": ""}) == ""
    path = tmp_path / "out" / "mylora.json"
    text = training_command(values, path, "en", python="/venv/bin/python")
    assert text == f"/venv/bin/python -m trainer --config {path}"
    assert json.loads(path.read_text())["train_data_dir"] == values["train_data_dir"]
    two = training_command({**values, "num_processes": 2}, path, "en", python="/venv/bin/python")
    first, launch = two.splitlines()
    args = shlex.split(launch)
    assert args[:3] == ["/venv/bin/python", "-m", "accelerate.commands.launch"]
    assert args[args.index("--num_processes") + 1] == "2" and args[-2:] == ["--config", str(path)]
    assert "--events" not in args  # the line a person runs prints a progress bar


class FakeProc:
    def __init__(self, cmd, **kwargs):
        self.cmd, self.kwargs, self.returncode = cmd, kwargs, None

    def poll(self):
        return self.returncode

    def terminate(self):
        self.returncode = -15

    def wait(self, timeout=None):
        return self.returncode

    def kill(self):
        self.returncode = -9


def test_tensorboard_starts_once_as_an_argument_list_and_stops(tmp_path):
    started = []

    def popen(cmd, **kwargs):
        started.append(FakeProc(cmd, **kwargs))
        return started[-1]

    tb = TensorBoard(popen=popen, python="/venv/bin/python")
    url, new = tb.start(str(tmp_path / "logs"))
    cmd = started[0].cmd
    assert new and isinstance(cmd, list) and "shell" not in started[0].kwargs
    assert cmd[:5] == ["/venv/bin/python", "-m", "tensorboard.main", "--logdir", str(tmp_path / "logs")]
    assert cmd[5:7] == ["--host", "127.0.0.1"] and url == f"http://127.0.0.1:{cmd[8]}/"
    assert tb.start(str(tmp_path / "logs")) == (url, False) and len(started) == 1  # reused
    tb.start(str(tmp_path / "other"))  # another folder: the old one makes way
    assert started[0].returncode == -15 and len(started) == 2
    tb.stop()
    assert started[1].returncode == -15 and not tb.running


def test_the_buttons_say_what_to_set(tmp_path, values):
    app = make_app(AppOptions(user_dir=tmp_path / "u", settings_dir=tmp_path / "s"), FakeApi())
    page, tools = app.page, app.page.tools
    tools.tensorboard = TensorBoard(popen=FakeProc)
    data = {w: values[name] for name, w in page.form.widgets.items()}
    data.update({page.lang: "ja", tools.path: ""})
    data[page.form.widgets["logging_dir"]] = ""
    assert "ログフォルダ" in tools.on_tensorboard(data)[tools.run_message]
    data[page.form.widgets["logging_dir"]] = str(tmp_path / "logs")
    assert "127.0.0.1" in tools.on_tensorboard(data)[tools.run_message]
    tools.tensorboard.stop()
    data[page.form.widgets["output_dir"]] = ""
    assert "出力フォルダ" in tools.on_print(data)[tools.run_message]
    data[page.lang] = "en"
    data[page.form.widgets["output_dir"]] = values["output_dir"]
    data[tools.path] = str(tmp_path / "cfg.json")
    printed = tools.on_print(data)
    assert "-m trainer --config" in printed[tools.command]["value"]
    opened = tools.on_open(data)
    assert "Loaded **cfg**" in opened[tools.message] and opened[tools.download]["visible"] is True
    data[tools.path] = str(tmp_path / "missing.json")
    assert "does not exist" in tools.on_open(data)[tools.message]


@pytest.mark.slow
def test_a_real_tensorboard_answers_and_is_stopped(tmp_path):
    import time
    import urllib.request

    tb = TensorBoard(python=sys.executable)
    url, _ = tb.start(str(tmp_path / "logs"))
    try:
        end = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < end, "TensorBoard did not answer"
                time.sleep(0.5)
    finally:
        proc = tb._proc
        tb.stop()
    assert proc.poll() is not None
