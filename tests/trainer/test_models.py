"""The tokenizer, the tiny models and the model loader, as the trainer and users meet them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from transformers import CLIPTokenizer

from trainer.models import ModelLoadError, detect_model, load_models
from trainer.models.tokenizer import write_clip_tokenizer

ARCHS = ["sd15", "sd2v", "sdxl"]
# arch name in the loader, latent scale, prediction type, pad id of each tokenizer
EXPECTED = {
    "sd15": ("sd1", 0.18215, "epsilon", [49407]),
    "sd2v": ("sd2", 0.18215, "v_prediction", [0]),
    "sdxl": ("sdxl", 0.13025, "epsilon", [49407, 0]),
}
CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]  # openai/clip-vit-large-patch14


@pytest.mark.parametrize("pad_token, pad_id", [("<|endoftext|>", 49407), ("!", 0)])
def test_tokenizer_gives_the_real_clip_ids(tmp_path: Path, pad_token: str, pad_id: int) -> None:
    write_clip_tokenizer(tmp_path, pad_token=pad_token)
    assert (tmp_path / "vocab.json").is_file() and (tmp_path / "merges.txt").is_file()
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path)
    assert len(tokenizer) == 49408
    assert tokenizer.model_max_length == 77
    assert tokenizer("a photo of a cat").input_ids == CAT_IDS
    assert tokenizer("A  Photo of a CAT").input_ids == CAT_IDS  # lower-cased, spaces squeezed
    padded = tokenizer("a photo of a cat", padding="max_length", truncation=True).input_ids
    assert len(padded) == 77 and padded[:7] == CAT_IDS and set(padded[7:]) == {pad_id}
    long = tokenizer("cat " * 100, padding="max_length", truncation=True).input_ids
    assert len(long) == 77 and long[0] == 49406 and long[-1] == 49407


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_model_runs_in_diffusers_pipeline(tiny_model, arch: str) -> None:
    folder = tiny_model(arch)
    cls = StableDiffusionXLPipeline if arch == "sdxl" else StableDiffusionPipeline
    pipe = cls.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    result = pipe(
        "demochar, red circle",
        num_inference_steps=2,
        height=64,
        width=64,
        output_type="latent",
        generator=torch.Generator().manual_seed(0),
    )
    assert result.images.shape == (1, 4, 8, 8)
    assert torch.isfinite(result.images).all()
    for name in ("tokenizer", "tokenizer_2") if arch == "sdxl" else ("tokenizer",):
        assert getattr(pipe, name)("a photo of a cat").input_ids == CAT_IDS
        assert (folder / name / "vocab.json").is_file() and (folder / name / "merges.txt").is_file()


@pytest.mark.parametrize("arch", ARCHS)
def test_load_models_returns_frozen_models_of_the_right_kind(tiny_model, arch: str) -> None:
    name, scale, prediction, pad_ids = EXPECTED[arch]
    models = load_models(str(tiny_model(arch)))
    assert models.arch == name
    assert models.latent_scale == pytest.approx(scale)
    assert models.v_parameterization == (prediction == "v_prediction")
    assert models.noise_scheduler.config.prediction_type == prediction
    assert models.noise_scheduler.config.num_train_timesteps == 1000
    assert models.noise_scheduler.config.beta_schedule == "scaled_linear"
    assert models.source == str(tiny_model(arch))
    assert len(models.text_encoders) == len(pad_ids)
    assert [t.pad_token_id for t in models.tokenizers] == pad_ids
    assert all(t.model_max_length == 77 for t in models.tokenizers)
    for module in (models.unet, models.vae, *models.text_encoders):
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
    assert sum(p.numel() for p in models.unet.parameters()) < 5_000_000

    with torch.no_grad():
        # The VAE downsamples by 8: a 128 px image is a 16x16 latent.
        latents = models.vae.encode(torch.zeros(1, 3, 128, 128)).latent_dist.sample()
        assert latents.shape == (1, 4, 16, 16)
        # clip_skip 2 takes the second-to-last hidden state: there must be one.
        ids = models.tokenizers[0]("a photo of a cat", padding="max_length", return_tensors="pt").input_ids
        states = models.text_encoders[0](ids, output_hidden_states=True).hidden_states
        assert len(states) == 5 and states[-2].shape == (1, 77, 32)
        # The U-Net takes the text encoders' hidden states (concatenated for SDXL).
        context = torch.cat([te(ids).last_hidden_state for te in models.text_encoders], dim=-1)
        extra = {}
        if arch == "sdxl":
            pooled = models.text_encoders[1](ids).text_embeds
            time_ids = torch.tensor([[128.0, 128.0, 0.0, 0.0, 128.0, 128.0]])
            extra = {"added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}
        out = models.unet(latents, torch.tensor([500]), context, **extra).sample
        assert out.shape == latents.shape


@pytest.mark.parametrize("arch", ARCHS)
def test_detect_model_reads_configs_only(tiny_model, arch: str) -> None:
    info = detect_model(str(tiny_model(arch)))
    assert info.arch == EXPECTED[arch][0]
    assert info.v_prediction_hint == (arch == "sd2v")
    assert info.format == "diffusers"
    assert str(tiny_model(arch)) in info.message


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_models(str(tmp_path / "no_such_model"))


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "model.safetensors"
    empty.touch()
    with pytest.raises(ModelLoadError, match=r"empty \(0 bytes\).*Download it again"):
        load_models(str(empty))


def test_folder_without_model_index_is_a_clear_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="without model_index.json"):
        detect_model(str(tmp_path))
    with pytest.raises(ModelLoadError, match="give its parent folder"):
        detect_model(str(tiny_model_dir / "unet"))


def test_one_part_of_a_diffusers_folder_is_not_a_model(tiny_model_dir: Path) -> None:
    weights = tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors"
    with pytest.raises(ModelLoadError, match="U-Net part of a diffusers model"):
        load_models(str(weights))


def test_incomplete_folder_names_the_missing_part(tmp_path: Path, tiny_model_dir: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    shutil.rmtree(copy / "vae")
    with pytest.raises(ModelLoadError, match="incomplete.*vae"):
        load_models(str(copy))


def test_flags_that_contradict_the_model_are_errors(tiny_model) -> None:
    with pytest.raises(ModelLoadError, match="SDXL is ticked.*SD 1.x"):
        load_models(str(tiny_model("sd15")), sdxl=True)
    with pytest.raises(ModelLoadError, match="v2 is ticked.*SDXL"):
        load_models(str(tiny_model("sdxl")), v2=True)
    models = load_models(str(tiny_model("sd2v")), v2=True)  # agreeing flags are fine
    assert models.arch == "sd2"


def test_v_parameterization_flag_switches_the_training_target(tiny_model_dir: Path) -> None:
    models = load_models(str(tiny_model_dir), v_parameterization=True)
    assert models.v_parameterization
    assert models.noise_scheduler.config.prediction_type == "v_prediction"


def test_separate_vae_folder(tiny_model) -> None:
    models = load_models(str(tiny_model("sd15")), vae_path=str(tiny_model("sdxl") / "vae"))
    assert models.latent_scale == pytest.approx(0.13025)  # the given VAE's own config
    with pytest.raises(ModelLoadError, match="not a diffusers VAE folder"):
        load_models(str(tiny_model("sd15")), vae_path=str(tiny_model("sd15") / "unet_missing"))


def test_hub_id_uses_the_local_cache_only(tmp_path: Path, tiny_model_dir: Path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(
        ModelLoadError, match="neither a local folder/file nor a model in the Hugging Face cache"
    ):
        detect_model("someone/not-downloaded")

    # A model downloaded earlier sits in the cache as models--owner--name/snapshots/<commit>.
    repo = tmp_path / "models--demo--tiny-sd15"
    commit = "0" * 40
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    info = detect_model("demo/tiny-sd15")
    assert info.arch == "sd1" and "Hugging Face cache" in info.message
    models = load_models("demo/tiny-sd15")
    assert models.arch == "sd1" and models.source == "demo/tiny-sd15"


def test_detect_model_does_not_need_torch_configs_damaged(tmp_path: Path, tiny_model_dir: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    (copy / "model_index.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="damaged"):
        detect_model(str(copy))
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionXLPipeline"
    (copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match="without text_encoder_2"):
        detect_model(str(copy))
