"""The run's model, built from its configs on meta tensors: every shape, no weight read.

`model_configs` finds each component's diffusers / transformers config the way loading
would: a diffusers folder's own `*/config.json`, or for a single-file checkpoint the
shapes in its header run through the same `derive_configs` that `load_single_file` uses
(trainer.models.ldm_configs). The shipped full-size configs (trainer/models/configs/sd15,
sd2, sd2v, sdxl) are diffusers folders without weights, so they work as a model path too.

`build_fake_models` then builds the same classes `load_models` returns (UNet2DConditionModel,
CLIPTextModel / CLIPTextModelWithProjection, AutoencoderKL) in the dtype the run loads
them in, on the caller's default device (the meta device), frozen and in eval mode as `load_models` leaves
them. The tokenizers are the real CLIP tokenizer (trainer.models.tokenizer).

Imports torch, diffusers, transformers and trainer.models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.models.detect import ModelInfo, detect_model
from trainer.models.errors import ModelLoadError
from trainer.models.ldm_configs import config_name, derive_configs, shipped_config


@dataclass(frozen=True)
class ModelConfigs:
    """What the estimate needs to know of a base model: its architecture and configs."""

    arch: str  # "sd1", "sd2", "sdxl"
    v_parameterization: bool
    configs: dict[str, dict[str, Any]]  # component -> config ("unet", "vae", "text_encoder"...)
    identity: str  # what the cache key names the model by (path, size, date)


def _text_components(arch: str) -> tuple[str, ...]:
    return ("text_encoder", "text_encoder_2") if arch == "sdxl" else ("text_encoder",)


def model_configs(path: str, *, v_parameterization: bool = False) -> ModelConfigs:
    """The configs of the model at `path` (diffusers folder or single file). Reads no weights;
    raises ModelLoadError as loading would."""
    info: ModelInfo = detect_model(path)
    v_param = bool(v_parameterization or info.v_prediction_hint)
    local = Path(info.local_path)
    stat = local.stat()
    identity = f"{local.resolve()}|{info.size_bytes}|{int(stat.st_mtime)}"
    if info.format == "single-file":
        return ModelConfigs(info.arch, v_param, _single_file_configs(local, info.arch, v_param), identity)
    configs = {}
    for component in ("unet", "vae", *_text_components(info.arch)):
        file = local / component / "config.json"
        try:
            configs[component] = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"{file} cannot be read ({err}); the model folder looks damaged.") from err
        identity += f"|{component}:{int(file.stat().st_mtime)}"
    return ModelConfigs(info.arch, v_param, configs, identity)


def _single_file_configs(file: Path, arch: str, v_param: bool) -> dict[str, dict[str, Any]]:
    """As load_single_file derives them from the header's shapes (the VAE: the file's, if any)."""
    from trainer.models.checkpoint_kind import read_header
    from trainer.models.ldm_layout import COMPONENT_PREFIXES

    shapes = read_header(file).shapes
    name = config_name(arch, v_param)
    parts = {
        component: {k[len(prefix) :]: s for k, s in shapes.items() if k.startswith(prefix) and s is not None}
        for component, prefix in COMPONENT_PREFIXES[arch].items()
    }
    configs = derive_configs(arch, name, parts, str(file))
    configs.setdefault("vae", shipped_config(name, "vae"))  # no VAE inside: the family's (same shapes)
    return configs


def load_dtype(mixed_precision: str) -> torch.dtype:
    """The dtype a GPU run loads the frozen model in (trainer.run.train.Run._load_models)."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision, torch.float32)


def build_fake_models(mc: ModelConfigs, dtype: torch.dtype, source: str = ""):
    """SDModels built from `mc` on the default device (see the module docstring)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from trainer.models.load import SDModels, training_scheduler
    from trainer.models.tokenizer import build_clip_tokenizer

    unet = UNet2DConditionModel.from_config(mc.configs["unet"])
    vae = AutoencoderKL.from_config(mc.configs["vae"])
    encoders = []
    for component in _text_components(mc.arch):
        cls = CLIPTextModelWithProjection if component == "text_encoder_2" else CLIPTextModel
        encoders.append(cls(CLIPTextConfig.from_dict(mc.configs[component])))
    for module in (unet, vae, *encoders):
        module.to(dtype=dtype)
        module.requires_grad_(False)
        module.eval()
    name = config_name(mc.arch, mc.v_parameterization)
    tokenizers = [
        build_clip_tokenizer(shipped_config(name, tok).get("pad_token", "<|endoftext|>"))
        for tok in (("tokenizer", "tokenizer_2") if mc.arch == "sdxl" else ("tokenizer",))
    ]
    return SDModels(
        arch=mc.arch,
        v_parameterization=mc.v_parameterization,
        tokenizers=tokenizers,
        text_encoders=encoders,
        vae=vae,
        unet=unet,
        noise_scheduler=training_scheduler(mc.v_parameterization),
        latent_scale=float(vae.config.scaling_factor),
        source=source,
    )
