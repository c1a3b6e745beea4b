"""Every architecture in every format through the CLI, and what SD2 / SDXL add.

Each tiny model (SD1.5, SD2 768-v, SDXL; diffusers folder and single file) trains a few
steps with `python -m trainer --config`; the LoRA it writes loads into that
architecture's diffusers pipeline and changes what the U-Net predicts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from PIL import Image
from safetensors import safe_open

from trainer.__main__ import main
from trainer.config import ConfigError, config_from_dict
from trainer.models import load_models

# arch -> (ss_base_model_version, modelspec.architecture, ss_v2, key prefixes)
EXPECTED = {
    "sd15": ("sd_v1", "stable-diffusion-v1/lora", "False", {"lora_unet_", "lora_te_"}),
    "sd2v": ("sd_v2_v", "stable-diffusion-v2-768-v/lora", "True", {"lora_unet_", "lora_te_"}),
    "sdxl": (
        "sdxl_base_v1-0",
        "stable-diffusion-xl-v1-base/lora",
        "False",
        {"lora_unet_", "lora_te1_", "lora_te2_"},
    ),
}


def _preset(tmp: Path, model: Path, data: Path, arch: str, **over) -> Path:
    preset = {
        "pretrained_model_name_or_path": str(model),
        "train_data_dir": str(data),
        "output_dir": str(tmp / "out"),
        "output_name": "lora",
        "mixed_precision": "no",
        "optimizer": "AdamW",
        "learning_rate": 5e-3,
        "lr_scheduler": "constant",
        "lr_warmup": 0,
        "train_batch_size": 2,
        "epoch": 1,
        "max_train_steps": 2,
        "max_resolution": "64,64",
        "min_bucket_reso": 64,
        "max_bucket_reso": 128,
        "network_dim": 4,
        "network_alpha": 4,
        "cache_latents": True,
        "seed": 3,
        # One thread: on a busy 2-core runner more threads only wait for each other.
        "num_cpu_threads_per_process": 1,
        # The user's settings for each family; v-prediction is theirs to say.
        "v2": arch == "sd2v",
        "v_parameterization": arch == "sd2v",
        "sdxl": arch == "sdxl",
        "min_snr_gamma": 5,
    }
    preset.update(over)
    path = tmp / "preset.json"
    path.write_text(json.dumps(preset), encoding="utf-8")
    return path


def _pipeline(model: Path, arch: str):
    """The architecture's diffusers pipeline: from_pretrained for a folder, our loader for a file."""
    cls = StableDiffusionXLPipeline if arch == "sdxl" else StableDiffusionPipeline
    if model.is_dir():
        return cls.from_pretrained(model)
    m = load_models(str(model), v_parameterization=arch == "sd2v")
    if arch == "sdxl":
        return cls(
            vae=m.vae,
            text_encoder=m.text_encoders[0],
            text_encoder_2=m.text_encoders[1],
            tokenizer=m.tokenizers[0],
            tokenizer_2=m.tokenizers[1],
            unet=m.unet,
            scheduler=m.noise_scheduler,
            add_watermarker=False,
        )
    return cls(
        vae=m.vae,
        text_encoder=m.text_encoders[0],
        tokenizer=m.tokenizers[0],
        unet=m.unet,
        scheduler=m.noise_scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


@torch.no_grad()
def _unet_output(pipe) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    config = pipe.unet.config
    kwargs = {}
    if config.addition_embed_type == "text_time":
        pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
        kwargs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(1, pooled, generator=gen),
            "time_ids": torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]]),
        }
    sample = torch.randn(1, 4, 8, 8, generator=gen)
    context = torch.randn(1, 77, config.cross_attention_dim, generator=gen)
    return pipe.unet(sample, torch.tensor([500]), context, **kwargs).sample


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["diffusers", "single-file"])
@pytest.mark.parametrize("arch", ["sd15", "sd2v", "sdxl"])
def test_cli_trains_and_the_lora_loads_in_diffusers(
    tmp_path, tiny_model, tiny_single_file, demo_dataset, arch: str, fmt: str
) -> None:
    model = tiny_model(arch) if fmt == "diffusers" else tiny_single_file(arch)
    assert main(["--config", str(_preset(tmp_path, model, demo_dataset, arch))]) == 0
    lora = tmp_path / "out" / "lora.safetensors"
    with safe_open(lora, "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    version, architecture, v2, prefixes = EXPECTED[arch]
    assert {p for p in prefixes if any(k.startswith(p) for k in keys)} == prefixes
    assert all(k.startswith(tuple(prefixes)) for k in keys)
    assert (meta["ss_base_model_version"], meta["modelspec.architecture"], meta["ss_v2"]) == (
        version,
        architecture,
        v2,
    )
    assert meta["ss_sd_model_name"] == model.name
    if arch == "sdxl":  # SGM block names, as sd-scripts writes them
        unet_names = {k.split(".")[0] for k in keys if k.startswith("lora_unet_")}
        assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q" in unet_names
        assert "lora_unet_middle_block_1_transformer_blocks_1_attn2_to_k" in unet_names
        assert "lora_unet_output_blocks_0_1_proj_out" in unet_names
        assert not any("down_blocks" in n or "up_blocks" in n for n in unet_names)

    pipe = _pipeline(model, arch)
    before = _unet_output(pipe)
    pipe.load_lora_weights(str(lora))
    after = _unet_output(pipe)
    assert (after - before).abs().max() > 1e-5


def test_sdxl_cache_text_encoder_outputs_trains_the_unet_only(
    tmp_path, tiny_single_file, demo_dataset
) -> None:
    preset = _preset(
        tmp_path,
        tiny_single_file("sdxl"),
        demo_dataset,
        "sdxl",
        max_train_steps=1,
        cache_text_encoder_outputs=True,
        network_train_unet_only=True,
    )
    assert main(["--config", str(preset)]) == 0
    with safe_open(tmp_path / "out" / "lora.safetensors", "pt") as f:
        keys = list(f.keys())
    sgm = ("lora_unet_input_blocks_", "lora_unet_middle_block_", "lora_unet_output_blocks_")
    assert keys and all(k.startswith(sgm) for k in keys)


def test_cache_text_encoder_outputs_conflicts_are_named() -> None:
    base = {
        "pretrained_model_name_or_path": "m.safetensors",
        "train_data_dir": "d",
        "output_dir": "o",
        "sdxl": True,
        "cache_text_encoder_outputs": True,
    }
    with pytest.raises(ConfigError) as err:
        config_from_dict({**base, "shuffle_caption": True, "caption_dropout_rate": 0.1})
    problems = [str(p) for p in err.value.problems if p.key == "cache_text_encoder_outputs"]
    assert any("network_train_unet_only" in p for p in problems)
    assert any("shuffle_caption, caption_dropout_rate" in p for p in problems)
    cfg, _ = config_from_dict({**base, "network_train_unet_only": True})
    assert cfg.cache_text_encoder_outputs


@pytest.mark.parametrize("cache_latents", [True, False])
def test_sdxl_size_conditioning_of_a_cropped_bucket_image(
    tmp_path, tiny_model, monkeypatch, cache_latents: bool
) -> None:
    """A 96x64 image in the 64x64 bucket is resized to 96x64 and 16 px cut on each side:
    the U-Net is told original (64, 96), crop top-left (0, 16), target (64, 64)."""
    from diffusers import UNet2DConditionModel

    folder = tmp_path / "data" / "1_wide"
    folder.mkdir(parents=True)
    Image.new("RGB", (96, 64), "white").save(folder / "wide.png")
    (folder / "wide.txt").write_text("wide", encoding="utf-8")
    seen: list[torch.Tensor] = []
    forward = UNet2DConditionModel.forward

    def spy(self, *args, added_cond_kwargs=None, **kwargs):
        seen.append(added_cond_kwargs["time_ids"].detach().cpu())
        return forward(self, *args, added_cond_kwargs=added_cond_kwargs, **kwargs)

    monkeypatch.setattr(UNet2DConditionModel, "forward", spy)
    preset = _preset(
        tmp_path,
        tiny_model("sdxl"),
        tmp_path / "data",
        "sdxl",
        max_train_steps=1,
        train_batch_size=1,
        bucket_no_upscale=False,
        cache_latents=cache_latents,
        network_train_unet_only=True,
    )
    assert main(["--config", str(preset)]) == 0
    assert seen and torch.equal(seen[0].float(), torch.tensor([[64.0, 96.0, 0.0, 16.0, 64.0, 64.0]]))
