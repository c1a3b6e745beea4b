"""Sample images during training: prompt lines, timing, samplers, and the images."""

import json

import pytest
import torch
from PIL import Image

from tests.helpers import make_toy_dataset, write_preset
from trainer.config import FIELDS, config_from_dict
from trainer.sampling.prompts import (
    SamplePrompt,
    parse_prompt_line,
    parse_prompts,
    read_sample_prompts,
    sample_size,
    sampling_due,
)

SMALL = "--w 64 --h 64 --s 2"
FAST = SMALL + " --l 1"  # CFG scale 1: one U-Net pass per step instead of two


# ---- prompt lines ------------------------------------------------------------------------------
def test_kohya_flags_are_read_from_a_prompt_line():
    p = parse_prompt_line(
        "mychar, smiling, upper body --n lowres, bad hands --w 512 --h 768 --s 28 --l 7.5 --d 5"
    )
    assert p == SamplePrompt(
        prompt="mychar, smiling, upper body",
        negative="lowres, bad hands",
        width=512,
        height=768,
        steps=28,
        scale=7.5,
        seed=5,
    )
    assert parse_prompt_line("just a prompt") == SamplePrompt(prompt="just a prompt")
    assert parse_prompt_line("  # a comment --w 5") is None and parse_prompt_line("   ") is None


def test_a_bad_flag_names_the_line():
    with pytest.raises(ValueError, match="line 2.*--w needs a number"):
        parse_prompts("fine\nbad --w wide")
    with pytest.raises(ValueError, match="unknown flag --x"):
        parse_prompt_line("a cat --x 3")


def test_sample_prompts_holds_the_text_or_a_file_path(tmp_path):
    assert [p.prompt for p in read_sample_prompts("a cat --w 64\n\n# note\na dog")] == ["a cat", "a dog"]
    txt = tmp_path / "prompts.txt"
    txt.write_text("from a file --d 3\n", encoding="utf-8")
    assert read_sample_prompts(str(txt)) == [SamplePrompt(prompt="from a file", seed=3)]
    js = tmp_path / "prompts.json"
    js.write_text(
        json.dumps(
            [{"prompt": "json cat", "negative_prompt": "dog", "width": 64, "sample_steps": 4, "seed": 1}]
        ),
        encoding="utf-8",
    )
    assert read_sample_prompts(str(js)) == [
        SamplePrompt(prompt="json cat", negative="dog", width=64, steps=4, seed=1)
    ]
    with pytest.raises(ValueError, match="does not exist"):
        read_sample_prompts(str(tmp_path / "missing.txt"))
    assert read_sample_prompts("  ") == []


def test_sample_size_defaults_to_the_training_resolution_and_rounds_to_64():
    assert sample_size(SamplePrompt("a"), (768, 512)) == (768, 512)
    assert sample_size(SamplePrompt("a", width=500, height=30), (512, 512)) == (448, 64)


def test_timing_follows_sd_scripts():
    def due(step, epoch_end=None, n=0, e=0):
        return sampling_due(step=step, every_n_steps=n, every_n_epochs=e, epoch_end=epoch_end)

    assert [s for s in range(1, 10) if due(s, n=3)] == [3, 6, 9]
    assert not due(3, epoch_end=1, n=3)  # step sampling happens after steps only
    assert [e for e in range(1, 6) if due(10, epoch_end=e, e=2)] == [2, 4]
    assert not due(3, n=3, e=2)  # every_n_epochs set: every_n_steps is not used
    assert not due(0, n=3)


# ---- settings ---------------------------------------------------------------------------------
def test_sample_settings_are_on_the_samples_tab_and_load_from_a_kohya_preset(tmp_path):
    for key in (
        "sample_every_n_steps",
        "sample_every_n_epochs",
        "sample_at_first",
        "sample_sampler",
        "sample_prompts",
    ):
        spec = FIELDS[key]
        assert spec.tab == "Samples" and spec.help and spec.help_ja and spec.label_ja
    assert {"euler_a", "euler", "ddim", "dpmsolver++", "k_euler_a"} <= set(FIELDS["sample_sampler"].choices)
    cfg, warnings = config_from_dict(
        {  # as kohya_ss writes them: numbers as text, prompts inline
            "pretrained_model_name_or_path": "m",
            "train_data_dir": "d",
            "output_dir": "o",
            "sample_every_n_steps": "50",
            "sample_every_n_epochs": 0,
            "sample_sampler": "k_dpm_2_a",
            "sample_prompts": "masterpiece, 1girl --n lowres --w 512 --h 768 --d 1 --l 7 --s 28",
        }
    )
    assert (cfg.sample_every_n_steps, cfg.sample_sampler) == (50, "k_dpm_2_a")
    assert "--n lowres" in cfg.sample_prompts and not any("sample" in w for w in warnings)
    _, warnings = config_from_dict(
        {
            "pretrained_model_name_or_path": "m",
            "train_data_dir": "d",
            "output_dir": "o",
            "sample_every_n_steps": 5,
            "sample_every_n_epochs": 1,
        }
    )
    assert any("sample_prompts is empty" in w for w in warnings)
    assert any("sample_every_n_steps is not used" in w for w in warnings)


def test_samplers_map_to_diffusers_schedulers_on_the_training_schedule():
    from trainer.models.load import training_scheduler
    from trainer.sampling.preview import make_scheduler

    eps, v = training_scheduler(False).config, training_scheduler(True).config
    expected = {
        "euler_a": "EulerAncestralDiscreteScheduler",
        "k_euler_a": "EulerAncestralDiscreteScheduler",
        "euler": "EulerDiscreteScheduler",
        "ddim": "DDIMScheduler",
        "dpmsolver++": "DPMSolverMultistepScheduler",
        "dpmsingle": "DPMSolverSinglestepScheduler",
        "k_dpm_2_a": "KDPM2AncestralDiscreteScheduler",
        "heun": "HeunDiscreteScheduler",
    }
    for name, cls in expected.items():
        assert type(make_scheduler(name, eps)).__name__ == cls
    assert make_scheduler("dpmsolver++", eps).config.algorithm_type == "dpmsolver++"
    assert make_scheduler("ddim", v).config.prediction_type == "v_prediction"
    assert make_scheduler("euler", eps).config.beta_schedule == "scaled_linear"
    with pytest.raises(ValueError, match="unknown sampler"):
        make_scheduler("magic", eps)


def test_lms_without_scipy_is_explained_before_the_run(monkeypatch):
    import importlib.util

    from trainer.sampling.preview import sampler_problem

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "scipy" else real(n, *a))
    assert "pip install scipy" in sampler_problem("k_lms")
    assert sampler_problem("euler_a") is None


def test_a_prompt_file_that_is_missing_stops_the_run_before_loading(tmp_path):
    from trainer.run.preflight import run_preflight

    values = {
        "pretrained_model_name_or_path": "x",
        "train_data_dir": "d",
        "output_dir": str(tmp_path),
        "sample_every_n_steps": 5,
        "sample_prompts": str(tmp_path / "nope.txt"),
    }
    cfg, _ = config_from_dict(values)
    problems, _ = run_preflight(cfg)
    assert any(p.key == "sample_prompts" and "does not exist" in p.message for p in problems)


# ---- images with the LoRA ------------------------------------------------------------------
@pytest.fixture(scope="module")
def models_with_lora(tiny_model):
    from trainer.models import load_models
    from trainer.network import LoRANetwork

    models = load_models(str(tiny_model("sd15")))
    network = LoRANetwork(models.unet, models.text_encoders, arch=models.arch, rank=4, alpha=4)
    network.apply_to()
    return models, network


def make_sampler(models, network, tmp_path, events, sampler="euler_a", prompt="toy, red square"):
    from trainer.sampling.preview import Sampler

    prompts = read_sample_prompts(f"{prompt} --n blurry {FAST} --d 7")
    return Sampler(
        models,
        network,
        prompts,
        sampler=sampler,
        output_dir=tmp_path,
        output_name="toy",
        resolution=(64, 64),
        seed=1,
        clip_skip=1,
        device=torch.device("cpu"),
        emit=events.append,
    )


def test_samples_are_written_and_reported_and_training_state_is_restored(models_with_lora, tmp_path):
    models, network = models_with_lora
    events = []
    models.unet.train()
    network.train()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    paths = make_sampler(models, network, tmp_path, events).sample(step=12)
    assert torch.equal(torch.rand(3), expected_next)  # training's random stream is untouched
    assert models.unet.training and network.training and not models.vae.training
    assert len(paths) == 1 and paths[0].parent == tmp_path / "sample"
    assert paths[0].name.startswith("toy_000012_00_") and paths[0].suffix == ".png"
    with Image.open(paths[0]) as img:
        assert img.size == (64, 64)
        assert "Negative prompt: blurry" in img.info["parameters"]
    [event] = events
    assert event.kind == "sample"
    assert (event.data["path"], event.data["prompt"], event.data["step"]) == (
        str(paths[0]),
        "toy, red square",
        12,
    )


@pytest.mark.parametrize("sampler", ["euler", "ddim", "dpmsolver++"])
def test_each_sampler_makes_an_image(models_with_lora, tmp_path, sampler):
    [path] = make_sampler(*models_with_lora, tmp_path, [], sampler=sampler).sample(step=1, epoch=3)
    assert path.name.startswith("toy_e000003_00_")
    with Image.open(path) as img:
        assert img.size == (64, 64)


def test_samples_show_the_lora(models_with_lora, tmp_path):
    """The same seed with a changed LoRA gives another picture: the LoRA is applied."""
    models, network = models_with_lora

    def pixels(folder):
        [path] = make_sampler(models, network, tmp_path / folder, []).sample(step=1)
        with Image.open(path) as img:
            return torch.tensor(list(img.getdata()), dtype=torch.float32)

    before = pixels("a")
    assert torch.equal(pixels("b"), before)  # the same seed repeats
    ups = [p for n, p in network.named_parameters() if "lora_up" in n]
    saved = [p.detach().clone() for p in ups]
    with torch.no_grad():
        for p in ups:
            p.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    try:
        assert (pixels("c") - before).abs().mean() > 1.0
    finally:
        with torch.no_grad():
            for p, s in zip(ups, saved, strict=True):
                p.copy_(s)


def test_sample_prompts_read_weights_like_kohyas_sampler(models_with_lora, tmp_path):
    """(word:1.5) weighs the word in a sample prompt; the brackets are not read as text."""

    def pixels(folder, prompt):
        [path] = make_sampler(*models_with_lora, tmp_path / folder, [], prompt=prompt).sample(step=1)
        with Image.open(path) as img:
            return torch.tensor(list(img.getdata()), dtype=torch.float32)

    plain = pixels("a", "toy, red square")
    assert torch.equal(pixels("b", "toy, (red square:1.0)"), plain)  # weight 1: the same prompt
    assert not torch.equal(pixels("c", "toy, (red square:1.8)"), plain)


def test_a_training_run_samples_before_training_and_every_n_steps(tiny_model, tmp_path, capsys):
    from trainer.__main__ import main

    data = make_toy_dataset(tmp_path / "data", n=2)
    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        data,
        max_train_steps=2,
        epoch=1,
        sample_at_first=True,
        sample_every_n_steps=2,
        sample_sampler="euler_a",
        sample_prompts=f"toy, red square {SMALL}",
    )
    assert main(["--config", str(preset), "--events", "jsonl"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    samples = [e for e in events if e["kind"] == "sample"]
    assert [e["step"] for e in samples] == [0, 2]
    files = sorted(p.name for p in (tmp_path / "out" / "sample").iterdir())
    assert len(files) == 2 and files[0].startswith("toy_000000_00_") and files[1].startswith("toy_000002_00_")
    kinds = [e["kind"] for e in events]
    assert kinds.index("sample") < kinds.index("step")  # sample_at_first comes before step 1
