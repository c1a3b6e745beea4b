"""End to end through the CLI on the tiny SD1.x model: files, keys, metadata, diffusers."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

from tests.helpers import ROOT, make_toy_dataset, write_preset
from trainer.__main__ import main


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    data = make_toy_dataset(tmp / "data")
    preset = write_preset(tmp, tiny_model("sd15"), data)
    assert main(["--config", str(preset)]) == 0
    return tmp / "out", preset, tiny_model("sd15")


def test_three_epochs_with_save_every_two_writes_exactly_two_files(trained):
    out, _, _ = trained
    assert sorted(p.name for p in out.iterdir()) == ["toy-000002.safetensors", "toy.safetensors"]


def test_keys_dtype_and_metadata_are_what_a1111_and_comfyui_read(trained):
    out, _, _ = trained
    with safe_open(out / "toy.safetensors", "pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in keys}
    assert keys and all(k.startswith(("lora_unet_", "lora_te_")) for k in keys)
    names = {k.rsplit(".", 2)[0] if k.endswith(".weight") else k.rsplit(".", 1)[0] for k in keys}
    for name in names:
        assert {f"{name}.lora_down.weight", f"{name}.lora_up.weight", f"{name}.alpha"} <= set(keys)
        assert tensors[f"{name}.alpha"].dim() == 0
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q" in names
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj" in names
    assert all(t.dtype == torch.float16 for t in tensors.values())
    for key in (
        "ss_network_module",
        "ss_network_dim",
        "ss_network_alpha",
        "ss_learning_rate",
        "ss_num_epochs",
        "ss_epoch",
        "ss_steps",
        "ss_resolution",
        "ss_base_model_version",
        "ss_tag_frequency",
        "ss_bucket_info",
        "sshs_model_hash",
        "modelspec.architecture",
        "ss_training_started_at",
        "ss_training_finished_at",
        "ss_seed",
        "ss_output_name",
    ):
        assert key in meta, key
    assert meta["ss_network_module"] == "networks.lora"
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "4.0"
    assert meta["ss_num_epochs"] == "3" and meta["ss_epoch"] == "3"
    assert meta["ss_base_model_version"] == "sd_v1"
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora"
    assert json.loads(meta["ss_tag_frequency"])["1_toy"]["red square"] == 4
    with safe_open(out / "toy-000002.safetensors", "pt") as f:
        assert f.metadata()["ss_epoch"] == "2"


def _unet_out(unet, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 4, 8, 8, generator=g)
    cond = torch.randn(1, 77, unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        return unet(x, torch.tensor([500]), cond).sample


def test_diffusers_loads_the_file_and_matches_our_lora(trained):
    from diffusers import StableDiffusionPipeline

    from trainer.models import load_models
    from trainer.network import LoRANetwork

    out, _, model = trained
    pipe = StableDiffusionPipeline.from_pretrained(str(model), safety_checker=None)
    base = _unet_out(pipe.unet)
    pipe.load_lora_weights(str(out / "toy.safetensors"))
    with_lora = _unet_out(pipe.unet)
    assert (with_lora - base).abs().max() > 1e-4

    m = load_models(str(model))
    net = LoRANetwork(m.unet, m.text_encoders, arch="sd1", rank=4, alpha=4)
    net.apply_to()
    net.load_kohya_weights(str(out / "toy.safetensors"))
    ours = _unet_out(m.unet)
    torch.testing.assert_close(ours, with_lora, rtol=1e-3, atol=1e-4)


def test_dry_run_json_plans_without_loading_a_model(tmp_path, tiny_model, capsys):
    data = make_toy_dataset(tmp_path / "data")
    preset = write_preset(tmp_path, tiny_model("sd15"), data)
    assert main(["--config", str(preset), "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["images"] == 4 and plan["reg_images"] == 0
    assert plan["buckets"] == [{"resolution": [64, 64], "count": 4}]
    assert plan["steps_per_epoch"] == 2 and plan["total_steps"] == 6
    assert plan["saves"] == ["toy-000002.safetensors", "toy.safetensors"]
    assert plan["skipped"] == [] and "warnings" in plan and plan["config"]["epoch"] == 3


def test_bad_input_exits_2_with_a_message_and_no_traceback(tmp_path):
    preset = write_preset(
        tmp_path, tmp_path / "m", tmp_path / "missing-folder", learning_rate=-1, train_batch_size=0
    )
    r = subprocess.run(
        [sys.executable, "-m", "trainer", "--config", str(preset)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert r.returncode == 2
    assert "learning_rate" in r.stderr and "train_batch_size" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_image_folder_exits_2_showing_the_layout(tmp_path, tiny_model, capsys):
    preset = write_preset(tmp_path, tiny_model("sd15"), tmp_path / "missing-folder")
    assert main(["--config", str(preset)]) == 2
    err = capsys.readouterr().err
    assert "missing-folder" in err and "_" in err and "Traceback" not in err


def test_kohya_timestep_loss_schedule_and_vae_batch_options_train_together(tiny_model, tmp_path):
    from trainer.api import run_training
    from trainer.presets import load_preset

    data = make_toy_dataset(tmp_path / "data")
    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        data,
        epoch=2,
        save_every_n_epochs=2,
        lr_warmup=25,
        min_timestep=100,
        max_timestep=900,
        debiased_estimation_loss=True,
        v_pred_like_loss=0.1,
        lr_scheduler="warmup_stable_decay",
        lr_scheduler_args="num_decay_steps=0.5 min_lr_ratio=0.1",
        cache_latents=True,
        vae_batch_size=2,
    )
    cfg, warnings = load_preset(preset)
    assert warnings == []
    steps = []
    assert run_training(cfg, lambda e: steps.append(e.data) if e.kind == "step" else None) == 0
    assert steps[-1]["step"] == 4 and all(torch.isfinite(torch.tensor(s["loss"])) for s in steps)
    # 4 steps: warmup 1, stable 1, decay 2 -> the last LR is min_lr_ratio x the first
    assert steps[-1]["lr"] == pytest.approx(0.1 * steps[0]["lr"])
    with safe_open(tmp_path / "out" / "toy.safetensors", "pt") as f:
        meta = f.metadata()
        names = list(f.keys())
        assert names and all(torch.isfinite(f.get_tensor(k)).all() for k in names)
    assert meta["ss_debiased_estimation"] == "True" and meta["modelspec.timestep_range"] == "100,900"
