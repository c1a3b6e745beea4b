"""gui.py's flags: loopback by default, no exposure without a password, presets at start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import gui

from .gui_fakes import FakeApi, free_port

ROOT = Path(gui.__file__).resolve().parent


def test_another_host_without_auth_exits_2_with_a_message():
    result = subprocess.run(
        [sys.executable, str(ROOT / "gui.py"), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--auth" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--host", "192.168.1.5"],
        ["--share"],
        ["--host", "0.0.0.0", "--auth", "nopassword"],
        ["--host", "0.0.0.0", "--auth", ":x"],
    ],
)
def test_exposure_without_a_real_password_is_refused(argv, capsys):
    assert gui.main(argv) == 2
    assert "--auth" in capsys.readouterr().err


@pytest.mark.parametrize(
    "host,loopback",
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("example.com", False),
        ("10.0.0.1", False),
    ],
)
def test_is_loopback(host, loopback):
    assert gui.is_loopback(host) is loopback


def test_launch_arguments_are_explicit_whatever_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADIO_SHARE", "True")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    args = gui.parse_args(["--preset", str(ROOT / "presets" / "demo.json")])
    options = gui.app_options(args)
    kw = gui.launch_kwargs(args, options)
    assert kw["share"] is False and kw["server_name"] == "127.0.0.1" and kw["auth"] is None
    assert kw["allowed_paths"] == []  # no folder: the app allows the files it makes one by one
    args = gui.parse_args(["--host", "0.0.0.0", "--auth", "me:pa:ss", "--share"])
    kw = gui.launch_kwargs(args, gui.app_options(args))
    assert kw["auth"] == ("me", "pa:ss") and kw["share"] is True and kw["allowed_paths"] == []


def test_gradio_share_in_the_environment_does_not_share(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADIO_SHARE", "True")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    args = gui.parse_args(["--port", str(free_port()), "--presets-dir", str(tmp_path)])
    demo = gui.serve(args, block=False)
    try:
        assert demo.share is False and demo.share_url is None
        assert demo.server_name == "127.0.0.1"
    finally:
        demo.close()


def test_preset_flag_opens_with_the_preset_loaded():
    args = gui.parse_args(["--preset", str(ROOT / "presets" / "sd15_character.json"), "--lang", "ja"])
    options = gui.app_options(args)
    assert options.lang == "ja" and options.values["network_dim"] == 32
    assert "sd15_character" in options.preset_note


def test_a_broken_preset_flag_exits_2(tmp_path, capsys):
    assert gui.main(["--preset", str(tmp_path / "missing.json")]) == 2
    assert "cannot load the preset" in capsys.readouterr().err


def test_demo_builds_what_is_missing_with_argument_lists(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(gui.subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    gui.ensure_demo(tmp_path)
    assert [c[0][1] for c in calls] == [
        str(tmp_path / "scripts" / "make_tiny_model.py"),
        str(tmp_path / "scripts" / "make_demo_dataset.py"),
    ]
    assert all(isinstance(cmd, list) and "shell" not in kw for cmd, kw in calls)
    assert calls[0][0][2:] == [
        "--arch",
        "sd15",
        "--format",
        "diffusers",
        "--out",
        str(tmp_path / "demo" / "model"),
    ]


def test_demo_preset_points_into_the_project(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    options = gui.app_options(gui.parse_args(["--demo"]))
    assert options.values["pretrained_model_name_or_path"] == str(ROOT / "demo" / "model")
    assert options.values["output_dir"] == str(ROOT / "demo" / "output")
    assert options.demo_model == str(ROOT / "demo" / "model")


def test_the_app_starts_without_torch_or_the_training_modules():
    code = (
        "import sys; from lora_gui.app import build_app; build_app(); "
        "heavy = [m for m in ('torch', 'diffusers', 'trainer.run.train', 'trainer.models') "
        "if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_ctrl_c_lets_a_running_training_save_first(tmp_path, values):
    import threading

    from lora_gui.runner import Runner
    from trainer.config import validate_values

    api = FakeApi(steps=50, gate=threading.Event())
    runner = Runner(api)
    runner.start(validate_values(values))
    threading.Timer(0.2, api.gate.set).start()
    gui.finish_run(runner)
    s = runner.snapshot()
    assert s.status == "stopped" and s.final_path.endswith(".safetensors")
