"""Inputs that used to make a run lie or die late: each refused before anything loads,
with a message that names the setting (or the file, or the line) and the limit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.config import ConfigError, config_from_dict
from trainer.config.checks import MAX_OUTPUT_NAME_BYTES
from trainer.presets import load_preset
from trainer.sampling.prompts import parse_prompts, read_sample_prompts

ROOT = Path(__file__).resolve().parents[2]
BASE = {"pretrained_model_name_or_path": "m", "train_data_dir": "d", "output_dir": "o"}


def _problems(**values) -> dict[str, list[str]]:
    with pytest.raises(ConfigError) as err:
        config_from_dict({**BASE, **values})
    return err.value.by_key()


def test_an_output_name_too_long_in_bytes_is_refused_before_training():
    # 78 Japanese characters: 78 characters (under the 150 limit) but 234 bytes
    problems = _problems(output_name="あ" * 78)
    assert "234 bytes" in problems["output_name"][0]
    assert f"{MAX_OUTPUT_NAME_BYTES} bytes or less" in problems["output_name"][0]
    config_from_dict({**BASE, "output_name": "あ" * (MAX_OUTPUT_NAME_BYTES // 3)})  # fits


def test_the_longest_file_a_run_writes_fits_a_file_name():
    name = "あ" * (MAX_OUTPUT_NAME_BYTES // 3)
    longest = f".{name}-stopped-9999999999.safetensors.tmp-9999999"
    assert len(longest.encode()) <= 255


@pytest.mark.parametrize("ext", ["../secret", "/etc/x", "a/b", ".t\\xt", ".txt ", "", ".."])
def test_caption_extension_must_be_an_extension(ext):
    if ext == "":
        config_from_dict({**BASE, "caption_extension": ext})  # empty = the default .txt
        return
    problems = _problems(caption_extension=ext)
    assert "must be a file extension" in problems["caption_extension"][0]


@pytest.mark.parametrize("ext", [".txt", ".caption", "txt", ".tags_v2"])
def test_usual_caption_extensions_are_accepted(ext):
    assert config_from_dict({**BASE, "caption_extension": ext})[0].caption_extension == ext


def test_a_deeply_nested_preset_is_a_config_error_with_exit_2(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"a":' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_preset(deep)
    fairly = tmp_path / "fairly.json"
    fairly.write_text(json.dumps({**BASE, "x": json.loads("[" * 50 + "]" * 50)}))
    with pytest.raises(ConfigError, match="nested more than 16 levels"):
        load_preset(fairly)
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "--config", str(deep), "--dry-run"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "nested too deeply" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("a --w 40000 --h 40000", "--w 40000 is outside 64..4096"),
        ("a --h 32", "--h 32 is outside 64..4096"),
        ("a --s 0", "--s 0 is outside 1..1000"),
        ("a --s 100000", "--s 100000 is outside 1..1000"),
        ("a --l 1e9", "--l 1000000000.0 is outside -100..100"),
        ("a --d -5", "--d -5 is outside"),
    ],
)
def test_sample_prompt_bounds_name_the_line(line, words):
    with pytest.raises(ValueError) as err:
        parse_prompts("fine --w 512\n" + line)
    assert str(err.value).startswith("sample prompt line 2:")
    assert words in str(err.value)


def test_sample_prompt_json_entries_are_bounded_too(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"prompt": "a"}, {"prompt": "b", "width": 40000}]))
    with pytest.raises(ValueError, match="entry 2: --w 40000 is outside"):
        read_sample_prompts(str(path))


def test_oversized_samples_are_refused_by_preflight():
    from trainer.run.preflight import run_preflight

    cfg, _ = config_from_dict(
        {**BASE, "sample_prompts": "a\nb --w 40000 --h 40000", "sample_every_n_epochs": 1}
    )
    problems, _ = run_preflight(cfg)
    sample = [p.message for p in problems if p.key == "sample_prompts"]
    assert sample == ["sample prompt line 2: --w 40000 is outside 64..4096 pixels"]


def test_tokens_in_additional_parameters_are_not_echoed():
    token, wandb = "hf_TopSecret0123456789", "0123456789abcdef0123456789abcdef01234567"
    cfg, warnings = config_from_dict(
        {
            **BASE,
            "use_8bit_adam": False,  # a Kohya GUI file
            "additional_parameters": f"--huggingface_token={token} --wandb_api_key {wandb} "
            "--hub_secret=abcd1234 --max_grad_norm=0.5",
        }
    )
    assert cfg.huggingface_token == token and cfg.max_grad_norm == 0.5  # still used...
    text = "\n".join(warnings)
    assert token not in text and wandb not in text and "abcd1234" not in text  # ...never shown
    assert "huggingface_token = ***" in text and "--wandb_api_key ***" in text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("--hub_token abc123secret --x", "--hub_token *** --x"),
        ('{"api_key": "abc123secret", "lr": 1}', '{"api_key": "***", "lr": 1}'),
        ("word hf_abcdefghijklmnopqrstu word", "word *** word"),
        ("max_token_length=150 network_dim=16", "max_token_length=150 network_dim=16"),
        ("a token from the environment", "a token from the environment"),
        ("quotes the token and --wandb_api_key=abc123secret", "quotes the token and --wandb_api_key=***"),
        ("--x --hub_token abc123secret", "--x --hub_token ***"),
    ],
)
def test_redaction_by_name_and_by_shape(text, shown):
    from trainer.config.secrets import redact_text

    assert redact_text(text) == shown


@pytest.mark.parametrize("lora_type", ["LyCORIS/iA3", "LyCORIS/BOFT", "LyCORIS/Native Fine-Tuning"])
def test_fp8_base_with_a_lycoris_type_that_cannot_bypass_is_refused(lora_type):
    problems = _problems(fp8_base=True, mixed_precision="bf16", LoRA_type=lora_type)
    assert "float8" in problems["fp8_base"][0] and "LyCORIS/LoHa" in problems["fp8_base"][0]


def test_fp8_base_with_loha_trains_in_bypass_mode(tiny_model):
    """float8 U-Net weights under autocast, LoHa in bypass mode: forward and backward work
    (an attention layer on the CPU: CPU autocast leaves norms to the GPU path)."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    from trainer.network.build import _training_lycoris_options, lycoris_options
    from trainer.network.lycoris_net import LycorisNetwork

    cfg, warnings = config_from_dict(
        {**BASE, "fp8_base": True, "mixed_precision": "bf16", "LoRA_type": "LyCORIS/LoHa"}
    )
    assert any("bypass mode" in w for w in warnings)
    assert _training_lycoris_options(cfg)["bypass_mode"] is True
    assert lycoris_options(cfg)["bypass_mode"] is False  # what the file says: as the user set it
    unet = UNet2DConditionModel.from_pretrained(tiny_model("sd15"), subfolder="unet").to(torch.float8_e4m3fn)
    te = CLIPTextModel.from_pretrained(tiny_model("sd15"), subfolder="text_encoder")

    net = LycorisNetwork(
        unet,
        [te],
        arch="sd1",
        lora_type="LyCORIS/LoHa",
        rank=4,
        alpha=1,
        conv_rank=0,
        conv_alpha=1,
        options=_training_lycoris_options(cfg),
        train_text_encoder=False,
    )
    net.apply_to()
    attn = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(torch.randn(1, 16, attn.to_q.in_features))
    out.float().sum().backward()
    assert any(p.grad is not None for p in net.parameters())
