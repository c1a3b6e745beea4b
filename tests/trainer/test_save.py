"""Saving LoRA files: atomic writes, refusal of broken weights, the hash and the metadata."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open

import trainer.network.lora_file as save_module
from trainer.network.lora_file import SaveError, build_metadata, kohya_dtype, save_lora


def _tensors() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "lora_unet_x.lora_down.weight": torch.randn(4, 8, generator=gen),
        "lora_unet_x.lora_up.weight": torch.randn(8, 4, generator=gen),
        "lora_unet_x.alpha": torch.tensor(1.0),
    }


def _cfg(**overrides) -> SimpleNamespace:
    values = {
        "network_dim": 8,
        "network_alpha": 1,
        "learning_rate": 1e-4,
        "unet_lr": 1e-4,
        "text_encoder_lr": 5e-5,
        "optimizer": "AdamW8bit",
        "lr_scheduler": "cosine",
        "train_batch_size": 2,
        "gradient_accumulation_steps": 3,
        "mixed_precision": "fp16",
        "clip_skip": 2,
        "seed": 42,
        "output_name": "mychar",
        "noise_offset": 0.05,
        "min_snr_gamma": 5,
        "caption_dropout_rate": 0.1,
        "flip_aug": False,
        "color_aug": True,
        "shuffle_caption": True,
        "keep_tokens": 1,
        "enable_bucket": True,
        "training_comment": "hello",
        "save_precision": "fp16",
        "huggingface_token": "hf_secret",
        "wandb_api_key": "wandb_secret",
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def _metadata(arch="sd1", v_parameterization=False, **cfg_overrides) -> dict[str, str]:
    return build_metadata(
        _cfg(**cfg_overrides),
        arch=arch,
        v_parameterization=v_parameterization,
        network_args={"conv_dim": "4", "api_key": "secret"},
        num_train_images=100,
        num_reg_images=0,
        epoch=2,
        steps=200,
        total_epochs=10,
        max_train_steps=1000,
        lr_warmup_steps=100,
        bucket_info={"buckets": {"0": {"resolution": [512, 512], "count": 100}}},
        tag_frequency={"5_mychar": {"mychar": 10, "smile": 3}},
        training_started_at=1700000000.5,
        resolution=(512, 512),
        model_name="runwayml/stable-diffusion-v1-5",
    )


def _data_section_hash(path: Path) -> str:
    blob = path.read_bytes()
    header_len = int.from_bytes(blob[:8], "little")
    return hashlib.sha256(blob[8 + header_len :]).hexdigest()


def test_saves_fp16_by_default_with_string_metadata_and_data_hash(tmp_path):
    path = save_lora(tmp_path / "out.safetensors", _tensors(), {"ss_network_dim": "8"})
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        names = f.keys()
        assert {f.get_tensor(k).dtype for k in names} == {torch.float16}
        assert f.get_tensor("lora_unet_x.alpha").dim() == 0
    assert meta["ss_network_dim"] == "8"
    assert meta["sshs_model_hash"] == _data_section_hash(path)
    assert sorted(os.listdir(tmp_path)) == ["out.safetensors"]


def test_hash_does_not_depend_on_metadata(tmp_path):
    a = save_lora(tmp_path / "a.safetensors", _tensors(), {"ss_epoch": "1"})
    b = save_lora(tmp_path / "b.safetensors", _tensors(), {"ss_epoch": "2", "ss_steps": "9"})
    with safe_open(str(a), "pt") as fa, safe_open(str(b), "pt") as fb:
        assert fa.metadata()["sshs_model_hash"] == fb.metadata()["sshs_model_hash"]


def test_bf16_and_float_precisions(tmp_path):
    for name, dtype in (("bf16", torch.bfloat16), ("float", torch.float32)):
        path = save_lora(tmp_path / f"{name}.safetensors", _tensors(), {}, dtype=kohya_dtype(name))
        with safe_open(str(path), "pt") as f:
            assert f.get_tensor("lora_unet_x.lora_up.weight").dtype == dtype
    with pytest.raises(ValueError, match="fp16"):
        kohya_dtype("fp8")


def test_failed_replace_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.safetensors"
    save_lora(target, _tensors(), {"ss_epoch": "1"})
    old = target.read_bytes()

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(save_module.os, "replace", disk_full)
    with pytest.raises(SaveError, match="disk is full") as info:
        save_lora(target, {k: v * 2 for k, v in _tensors().items()}, {"ss_epoch": "2"})
    assert str(target) in str(info.value)
    assert target.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["out.safetensors"]


def test_failed_write_midway_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.safetensors"
    save_lora(target, _tensors(), {})
    old = target.read_bytes()

    def fsync_fails(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(save_module.os, "fsync", fsync_fails)
    with pytest.raises(SaveError):
        save_lora(target, _tensors(), {"ss_epoch": "3"})
    assert target.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["out.safetensors"]


def test_read_only_folder_raises_save_error(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # running as root: permissions are not enforced, simulate

            def read_only(*_args, **_kwargs):
                raise OSError(errno.EROFS, "Read-only file system")

            monkeypatch.setattr(save_module, "open", read_only, raising=False)
        with pytest.raises(SaveError, match="read-only") as info:
            save_lora(folder / "out.safetensors", _tensors(), {})
        assert "out.safetensors" in str(info.value)
    finally:
        folder.chmod(0o755)
    assert os.listdir(folder) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    tensors = _tensors()
    tensors["lora_unet_x.lora_up.weight"][0, 0] = bad
    with pytest.raises(SaveError, match="NaN or inf"):
        save_lora(tmp_path / "out.safetensors", tensors, {})
    assert not (tmp_path / "out.safetensors").exists()


def test_values_that_overflow_fp16_are_refused(tmp_path):
    tensors = _tensors()
    tensors["lora_unet_x.lora_up.weight"][0, 0] = 1e6
    with pytest.raises(SaveError, match="overflows"):
        save_lora(tmp_path / "out.safetensors", tensors, {})
    save_lora(tmp_path / "out.safetensors", tensors, {}, dtype=torch.bfloat16)  # fits in bf16


def test_non_string_metadata_is_refused(tmp_path):
    with pytest.raises(SaveError, match="strings"):
        save_lora(tmp_path / "out.safetensors", _tensors(), {"ss_epoch": 1})


REQUIRED_SS = [
    "ss_network_module",
    "ss_network_dim",
    "ss_network_alpha",
    "ss_network_args",
    "ss_learning_rate",
    "ss_unet_lr",
    "ss_text_encoder_lr",
    "ss_optimizer",
    "ss_lr_scheduler",
    "ss_lr_warmup_steps",
    "ss_max_train_steps",
    "ss_num_epochs",
    "ss_epoch",
    "ss_steps",
    "ss_batch_size_per_device",
    "ss_total_batch_size",
    "ss_resolution",
    "ss_mixed_precision",
    "ss_clip_skip",
    "ss_v2",
    "ss_base_model_version",
    "ss_sd_model_name",
    "ss_seed",
    "ss_output_name",
    "ss_training_started_at",
    "ss_training_finished_at",
    "ss_num_train_images",
    "ss_num_reg_images",
    "ss_tag_frequency",
    "ss_bucket_info",
    "ss_noise_offset",
    "ss_min_snr_gamma",
    "ss_caption_dropout_rate",
    "ss_flip_aug",
    "ss_color_aug",
    "ss_shuffle_caption",
    "ss_keep_tokens",
    "ss_enable_bucket",
    "ss_training_comment",
    "modelspec.sai_model_spec",
    "modelspec.architecture",
    "modelspec.implementation",
    "modelspec.title",
    "modelspec.resolution",
    "modelspec.date",
    "modelspec.prediction_type",
]


def test_metadata_has_every_kohya_key_as_strings_in_sd_scripts_format():
    meta = _metadata()
    assert set(REQUIRED_SS) <= set(meta)
    assert all(isinstance(v, str) for v in meta.values())
    assert meta["ss_network_module"] == "networks.lora"
    assert meta["ss_network_dim"] == "8"
    assert meta["ss_network_alpha"] == "1.0"
    assert meta["ss_resolution"] == "(512, 512)"
    assert meta["ss_total_batch_size"] == "6"
    assert meta["ss_v2"] == "False"
    assert meta["ss_base_model_version"] == "sd_v1"
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora"
    assert meta["modelspec.implementation"] == "diffusers"
    assert meta["modelspec.resolution"] == "512x512"
    assert meta["modelspec.prediction_type"] == "epsilon"
    assert meta["modelspec.title"] == "mychar"
    assert json.loads(meta["ss_tag_frequency"]) == {"5_mychar": {"mychar": 10, "smile": 3}}
    assert json.loads(meta["ss_bucket_info"])["buckets"]["0"]["count"] == 100
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "4"}


def test_metadata_never_holds_secrets():
    meta = _metadata()
    text = json.dumps(meta)
    assert "hf_secret" not in text and "wandb_secret" not in text and "secret" not in meta["ss_network_args"]


@pytest.mark.parametrize(
    ("arch", "v", "version", "architecture"),
    [
        ("sd1", False, "sd_v1", "stable-diffusion-v1/lora"),
        ("sd2", False, "sd_v2", "stable-diffusion-v2-512/lora"),
        ("sd2", True, "sd_v2_v", "stable-diffusion-v2-768-v/lora"),
        ("sdxl", False, "sdxl_base_v1-0", "stable-diffusion-xl-v1-base/lora"),
    ],
)
def test_base_model_version_and_architecture(arch, v, version, architecture):
    meta = _metadata(arch=arch, v_parameterization=v)
    assert meta["ss_base_model_version"] == version
    assert meta["modelspec.architecture"] == architecture
    assert meta["modelspec.prediction_type"] == ("v" if v else "epsilon")
    assert meta["ss_v2"] == str(arch == "sd2")
    if arch == "sdxl":
        assert meta["modelspec.implementation"] == "https://github.com/Stability-AI/generative-models"


def test_missing_config_attributes_fall_back_to_defaults(tmp_path):
    meta = build_metadata(
        SimpleNamespace(),
        arch="sd1",
        v_parameterization=False,
        network_args={},
        num_train_images=1,
        num_reg_images=0,
        epoch=1,
        steps=1,
        total_epochs=1,
        max_train_steps=1,
        lr_warmup_steps=0,
        bucket_info={},
        tag_frequency={},
        training_started_at=0.0,
        resolution=(512, 768),
        model_name=str(tmp_path),
    )
    assert meta["ss_network_dim"] == "8" and meta["ss_output_name"] == "last"
    assert meta["ss_sd_model_name"] == tmp_path.name  # a local path is reduced to its name
    assert meta["modelspec.resolution"] == "512x768"
    save_lora(tmp_path / "x.safetensors", _tensors(), meta)
