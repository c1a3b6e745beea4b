"""What the buttons do, without a server: start, stop, refusals, messages."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lora_gui.handlers import Controller
from lora_gui.panel import error_markdown, progress_markdown
from trainer.config import Problem
from trainer.events import Event

from .gui_fakes import FakeApi, filled_values, until, write_png


@pytest.fixture
def ctl(api, tmp_path):
    return Controller(api, user_dir=tmp_path / "user")


def test_start_trains_and_reports_progress_and_the_saved_file(ctl, api, values):
    outcome = ctl.start(values, "en")
    assert outcome.started and outcome.problems == []
    assert "a fake warning" in outcome.message
    assert ctl.runner.wait(5)
    s = ctl.runner.snapshot()
    assert s.status == "finished" and s.step == s.total_steps == api.steps
    assert [step for step, _, _ in s.losses] == [1, 2, 3]
    assert s.saved == [s.final_path] and s.final_path.endswith("mylora.safetensors")
    assert "100 %" in progress_markdown(s, "en")
    assert ctl.downloadable(s.saved) == s.saved


def test_invalid_values_do_not_start_and_name_the_field_by_its_label(ctl, api, values):
    values["learning_rate"] = 5
    values["network_dim"] = 0
    outcome = ctl.start(values, "en")
    assert not outcome.started and api.runs == []
    assert "Training did not start" in outcome.message
    assert "**Learning rate**" in outcome.message
    assert "**Network Rank (Dimension)**" in outcome.message
    assert "learning_rate:" not in outcome.message
    ja = ctl.start(values, "ja")
    assert "**学習率**" in ja.message and "学習は開始されていません" in ja.message


def test_preflight_problems_block_the_start(tmp_path, values):
    api = FakeApi(preflight_problems=[Problem("mixed_precision", "fp16 needs an NVIDIA GPU")])
    ctl = Controller(api, user_dir=tmp_path)
    outcome = ctl.start(values, "en")
    assert not outcome.started and api.runs == []
    assert "**Mixed precision**: fp16 needs an NVIDIA GPU" in outcome.message


def test_a_second_start_while_running_is_refused(tmp_path, values):
    api = FakeApi(gate=threading.Event())
    ctl = Controller(api, user_dir=tmp_path)
    assert ctl.start(values, "en").started
    until(lambda: ctl.runner.snapshot().step == 1)
    second = ctl.start(values, "en")
    assert not second.started and "already in progress" in second.message
    assert len(api.runs) == 1
    api.gate.set()
    assert ctl.runner.wait(5)
    assert ctl.start(values, "en").started  # once it is over, Start works again
    assert ctl.runner.wait(5)


def test_stop_ends_after_the_current_step_with_a_saved_file(tmp_path, values):
    api = FakeApi(steps=50, gate=threading.Event())
    ctl = Controller(api, user_dir=tmp_path)
    assert ctl.stop("en") == "Nothing is running."
    ctl.start(values, "en")
    until(lambda: ctl.runner.snapshot().step == 1)
    assert "Stopping" in ctl.stop("en")
    assert ctl.runner.snapshot().status == "stopping"
    api.gate.set()
    assert ctl.runner.wait(5)
    s = ctl.runner.snapshot()
    assert s.status == "stopped" and s.step == 1
    assert s.final_path.endswith("mylora.safetensors")
    assert "Stopped at step 1" in progress_markdown(s, "en")


def test_a_training_error_is_a_message_saying_what_to_do(tmp_path, values):
    ctl = Controller(FakeApi(fail_with="CUDA out of memory"), user_dir=tmp_path)
    ctl.start(values, "en")
    assert ctl.runner.wait(5)
    text = error_markdown(ctl.runner.snapshot(), "en")
    assert "CUDA out of memory" in text and "What to do: lower the batch size" in text


def test_a_crashing_trainer_shows_no_traceback(tmp_path, values):
    ctl = Controller(FakeApi(raise_exc=RuntimeError("boom")), user_dir=tmp_path)
    ctl.start(values, "en")
    assert ctl.runner.wait(5)
    s = ctl.runner.snapshot()
    text = error_markdown(s, "en")
    assert s.status == "failed" and "RuntimeError: boom" in text
    assert "Traceback" not in text and "What to do" in text


def test_model_check_sets_the_family_and_keeps_v_param_unless_the_model_says_so(ctl, tmp_path):
    message, implied = ctl.model(str(tmp_path / "sdxl"), "en")
    assert message.startswith("✅ Found: **SDXL (single file, 13.4 MB)**")
    assert implied == {"v2": False, "sdxl": True}
    _, implied = ctl.model(str(tmp_path / "v2"), "en")
    assert implied == {"v2": True, "sdxl": False, "v_parameterization": True}
    message, implied = ctl.model(str(tmp_path / "missing"), "en")
    assert "was not found" in message and implied == {}
    assert "Choose the base model" in ctl.model("", "en")[0]


def test_summary_shows_folders_buckets_steps_skipped_files_and_advice(ctl, values):
    text = ctl.summary(values, "en")
    for expected in (
        "`10_mychar`",
        "| 10 | 4 | 1 |",
        "512x512: 3",
        "576x448: 1",
        "**40** steps",
        "`mylora.safetensors`",
        "`10_x/notes.pdf`: not an image",
        "5,000-10,000",
    ):
        assert expected in text, expected


def test_summary_lists_problems_and_asks_for_the_image_folder(ctl, values):
    values.update(train_data_dir="", learning_rate=-1)
    text = ctl.summary(values, "en")
    assert "**Image folder**: is empty; choose the image folder" in text
    assert "**Learning rate**" in text
    assert "Choose the image folder" in text


def test_summary_reports_a_dataset_error_as_a_message(ctl, values, tmp_path):
    values["train_data_dir"] = str(tmp_path / "nope")
    text = ctl.summary(values, "en")
    assert "not available" in text and "does not exist" in text


def test_only_the_newest_saved_files_are_offered_and_only_those_are_served(api, tmp_path):
    served = []
    ctl = Controller(api, user_dir=tmp_path, allow_file=served.append)
    files = []
    for i in range(6):
        f = tmp_path / f"lora-{i:06d}.safetensors"
        f.write_bytes(b"x")
        files.append(str(f))
    offered = ctl.downloadable([*files, str(tmp_path / "gone.safetensors")])
    assert offered == files[2:]
    assert served == [str(Path(f).resolve()) for f in files[2:]]


def test_sample_images_are_listed_newest_first_with_step_and_prompt(tmp_path, values):
    outside = write_png(tmp_path / "elsewhere" / "secret.png")
    api = FakeApi(
        sample_prompts=["a cat", "a dog"],
        extra_events=[
            Event(
                "sample", {"path": str(outside), "prompt": "outside", "step": 3, "epoch": None, "index": 5}
            ),
            Event(
                "sample",
                {
                    "path": str(tmp_path / "out" / "sample" / "gone.png"),
                    "prompt": "gone",
                    "step": 3,
                    "epoch": None,
                    "index": 6,
                },
            ),
        ],
    )
    allowed: list[str] = []
    ctl = Controller(api, user_dir=tmp_path / "user", allow_file=allowed.append)
    assert ctl.start(values, "en").started and ctl.runner.wait(5)
    s = ctl.runner.snapshot()
    assert len(s.samples) == 8 and "Sample image" in "\n".join(s.logs)
    items = ctl.samples(s, "en")
    assert [caption for _, caption in items] == [
        "Step 3: a cat",
        "Step 3: a dog",
        "Step 2: a cat",
        "Step 2: a dog",
        "Step 1: a cat",
        "Step 1: a dog",
    ]
    out = (tmp_path / "out").resolve()
    assert all(Path(p).is_file() and Path(p).is_relative_to(out) for p, _ in items)
    assert Path(items[0][0]).name == "mylora_000003_00.png"
    # only those exact files are served: not the one outside the output folder
    assert allowed == [p for p, _ in items] and str(outside.resolve()) not in allowed
    assert ctl.samples(s, "ja")[0][1] == "ステップ 3: a cat"


def test_the_run_panel_gallery_shows_the_samples_and_serves_only_them(tmp_path, values):
    import gradio as gr
    from gradio.utils import is_allowed_file

    from lora_gui.app import AppOptions, make_app

    api = FakeApi(sample_prompts=["a cat"])
    app = make_app(AppOptions(lang="en", user_dir=tmp_path / "user"), api=api)
    demo, page, panel = app.blocks, app.page, app.events.panel
    assert isinstance(page.gallery, gr.Gallery) and page.gallery in [c for c, _ in page.tr]
    assert panel("en", {})[page.gallery] == []  # nothing yet
    assert app.controller.start(values, "en").started and app.controller.runner.wait(5)
    out = panel("en", {})
    gallery, seen = out[page.gallery], out[page.seen]
    assert [caption for _, caption in gallery] == ["Step 3: a cat", "Step 2: a cat", "Step 1: a cat"]
    data = page.gallery.postprocess(gallery)
    assert [item.caption for item in data.root] == ["Step 3: a cat", "Step 2: a cat", "Step 1: a cat"]
    newest = Path(gallery[0][0])
    assert is_allowed_file(newest, blocked_paths=[], allowed_paths=demo.allowed_paths, created_paths=[])[0]
    assert not is_allowed_file(
        newest.parent / "other.png", blocked_paths=[], allowed_paths=demo.allowed_paths, created_paths=[]
    )[0]
    # unchanged samples are not sent again; a language switch re-captions them
    assert panel("en", seen)[page.gallery] == gr.skip()
    assert panel("ja", seen)[page.gallery][0][1] == "ステップ 3: a cat"


@pytest.mark.parametrize(
    "arch,label,implied",
    [
        ("sdxl", "SDXL (single file,", {"v2": False, "sdxl": True}),
        ("sd15", "SD 1.x (single file,", {"v2": False, "sdxl": False}),
    ],
)
def test_a_real_single_file_model_shows_its_summary_and_sets_the_family(
    tmp_path, tiny_single_file, arch, label, implied
):
    import trainer.api

    path = tiny_single_file(arch)
    info = trainer.api.detect_model(str(path))
    message, got = Controller(trainer.api, user_dir=tmp_path).model(str(path), "en")
    assert message.startswith(f"✅ Found: **{info.summary}**") and label in info.summary
    assert str(path) in message  # the detail line still names the file
    assert got == implied == {"v2": info.v2, "sdxl": info.sdxl}


def test_start_with_the_real_engine_refuses_what_the_dry_run_refuses(tmp_path, tiny_model):
    """Start runs the run's own checks (trainer.api.check_start): a folder whose repeats
    exceed the limit and a resume folder that does not exist are both refused, at once,
    before anything starts."""
    import trainer.api

    data = tmp_path / "img"
    write_png(data / "20000_mychar" / "a.png")
    values = filled_values(
        tmp_path,
        pretrained_model_name_or_path=str(tiny_model("sd15")),
        train_data_dir=str(data),
        resume=str(tmp_path / "no-such-state"),
    )
    c = Controller(trainer.api, user_dir=tmp_path)
    outcome = c.start(values, "en")
    assert not outcome.started and not c.runner.running
    keys = {p.key for p in outcome.problems}
    assert {"train_data_dir", "resume"} <= keys, outcome.problems
    assert "20000_mychar" in outcome.message and "no-such-state" in outcome.message
