"""Load the parts of a Stable Diffusion model that LoRA training needs.

One entry point, `load_models`, for SD 1.x, SD 2.x (including 768-v) and SDXL, from a
diffusers folder, a Hugging Face id already in the local cache, or a single-file
checkpoint in the original layout (.safetensors, or .ckpt opened weights-only; see
single_file.py). Nothing is downloaded. Everything comes back
frozen and in eval mode: the LoRA network is injected afterwards and only its weights
train. The noise scheduler is always a fresh DDPM training schedule, whatever scheduler
the model folder ships for inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from safetensors import SafetensorError
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from trainer.models.detect import ARCH_NAMES, ModelInfo, ModelLoadError, detect_model

__all__ = ["ModelInfo", "ModelLoadError", "SDModels", "detect_model", "load_models", "training_scheduler"]

# What a broken or mismatched component raises while loading.
_LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, SafetensorError)


@dataclass
class SDModels:
    """The loaded model, ready for LoRA injection (all modules frozen, eval mode)."""

    arch: str  # "sd1", "sd2", "sdxl"
    v_parameterization: bool
    tokenizers: list  # 1 (sd1/sd2) or 2 (sdxl)
    text_encoders: list  # CLIPTextModel / CLIPTextModelWithProjection
    vae: AutoencoderKL
    unet: UNet2DConditionModel
    noise_scheduler: DDPMScheduler
    latent_scale: float  # vae.config.scaling_factor (0.18215 SD1/2, 0.13025 SDXL)
    source: str  # the path or id the user gave


def training_scheduler(v_parameterization: bool) -> DDPMScheduler:
    """The DDPM schedule SD was trained with: 1000 steps, scaled_linear 0.00085..0.012."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type="v_prediction" if v_parameterization else "epsilon",
    )


def load_models(
    path: str,
    *,
    v2: bool = False,
    v_parameterization: bool = False,
    sdxl: bool = False,
    dtype: torch.dtype = torch.float32,
    vae_path: str | None = None,
) -> SDModels:
    """Load tokenizers, text encoders, VAE and U-Net of the model at `path`.

    v2 / sdxl: the user's checkboxes. The architecture is detected from the model itself;
    a checkbox that contradicts it is an error (never silently ignored).
    v_parameterization: train on the velocity target. It is also turned on when the
    model's own scheduler config says v_prediction (SD2 768-v); ModelInfo.message says so.
    vae_path: a different VAE (a diffusers VAE folder, a model folder with vae/, or a VAE
    .safetensors/.ckpt file).
    Raises ModelLoadError with a message for the user on every expected failure.
    """
    info = detect_model(path)
    _check_flags(info, path, v2=v2, sdxl=sdxl)
    v_param = bool(v_parameterization or info.v_prediction_hint)
    if info.format == "single-file":
        from trainer.models.single_file import load_single_file

        parts = load_single_file(
            Path(info.local_path), info.arch, v_parameterization=v_param, dtype=dtype, shown=str(path)
        )
        tokenizers, text_encoders, unet = parts.tokenizers, parts.text_encoders, parts.unet
        vae = _load_vae(vae_path, dtype, info.arch, v_param) if vae_path else parts.vae
        if vae is None:
            raise ModelLoadError(f"{path} holds no VAE. Give the VAE that belongs to this model under 'VAE'.")
    else:
        folder = info.local_path
        if info.arch == "sdxl":
            tokenizers = [_tokenizer(folder, "tokenizer"), _tokenizer(folder, "tokenizer_2")]
            text_encoders = [
                _component(CLIPTextModel, folder, "text_encoder", dtype=dtype),
                _component(CLIPTextModelWithProjection, folder, "text_encoder_2", dtype=dtype),
            ]
        else:
            tokenizers = [_tokenizer(folder, "tokenizer")]
            text_encoders = [_component(CLIPTextModel, folder, "text_encoder", dtype=dtype)]
        unet = _component(UNet2DConditionModel, folder, "unet", torch_dtype=dtype)
        vae = (
            _load_vae(vae_path, dtype, info.arch, v_param)
            if vae_path
            else _component(AutoencoderKL, folder, "vae", torch_dtype=dtype)
        )
    if vae.config.latent_channels != unet.config.in_channels:
        raise ModelLoadError(
            f"The VAE makes {vae.config.latent_channels}-channel latents but the U-Net of {path} "
            f"takes {unet.config.in_channels}; use the VAE that belongs to this model."
        )
    for module in (*text_encoders, unet, vae):
        module.requires_grad_(False)
        module.eval()
    return SDModels(
        arch=info.arch,
        v_parameterization=v_param,
        tokenizers=tokenizers,
        text_encoders=text_encoders,
        vae=vae,
        unet=unet,
        noise_scheduler=training_scheduler(v_param),
        latent_scale=float(vae.config.scaling_factor),
        source=str(path),
    )


def _check_flags(info: ModelInfo, path: str, *, v2: bool, sdxl: bool) -> None:
    """A checkbox the user ticked must agree with the model; unticked ones are not a claim."""
    found = ARCH_NAMES[info.arch]
    if v2 and sdxl:
        raise ModelLoadError(
            f"Both v2 and SDXL are ticked, but a model is one or the other; {path} is {found}. "
            "Untick the wrong one."
        )
    if sdxl and info.arch != "sdxl":
        raise ModelLoadError(
            f"SDXL is ticked but {path} is an {found} model, not SDXL. Untick SDXL "
            "or choose an SDXL base model."
        )
    if v2 and info.arch != "sd2":
        raise ModelLoadError(
            f"v2 is ticked but {path} is an {found} model, not SD 2.x. Untick v2 or choose an SD 2.x model."
        )


def _component(cls: type, folder: str, subfolder: str, **kwargs: object) -> torch.nn.Module:
    """from_pretrained one sub-folder, turning library errors into a message for the user."""
    try:
        return cls.from_pretrained(folder, subfolder=subfolder, local_files_only=True, **kwargs)
    except _LOAD_ERRORS as err:
        raise ModelLoadError(
            f"Could not load the {subfolder} of {folder}: {err}. The model folder looks "
            "incomplete or damaged; download or copy it again."
        ) from err


def _tokenizer(folder: str, subfolder: str) -> CLIPTokenizer:
    try:
        return CLIPTokenizer.from_pretrained(folder, subfolder=subfolder, local_files_only=True)
    except _LOAD_ERRORS as err:
        raise ModelLoadError(
            f"Could not load the {subfolder} of {folder}: {err}. The model folder looks "
            "incomplete or damaged; download or copy it again."
        ) from err


def _load_vae(vae_path: str, dtype: torch.dtype, arch: str, v_param: bool) -> AutoencoderKL:
    """A separate VAE: a diffusers VAE folder (config.json), a model folder with vae/, or a file."""
    folder = Path(vae_path).expanduser()
    if (folder / "config.json").is_file():
        return _component(AutoencoderKL, str(folder.parent), folder.name, torch_dtype=dtype)
    if (folder / "vae" / "config.json").is_file():
        return _component(AutoencoderKL, str(folder), "vae", torch_dtype=dtype)
    if folder.is_file():
        from trainer.models.detect import SINGLE_FILE_SUFFIXES
        from trainer.models.single_file import load_vae_file

        if folder.stat().st_size == 0 or folder.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise ModelLoadError(
                f"VAE {vae_path} is empty or not a model file; give a VAE .safetensors file, "
                "a diffusers VAE folder, or leave the VAE empty."
            )
        return load_vae_file(folder, arch, v_parameterization=v_param, dtype=dtype)
    raise ModelLoadError(
        f"VAE {vae_path} is not a diffusers VAE folder (no config.json, no vae/ sub-folder) "
        "or does not exist. Check the path or leave the VAE empty to use the model's own."
    )
