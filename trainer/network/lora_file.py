"""Write Kohya-format LoRA .safetensors files: atomically, finite, with ss_* metadata.

A crash, a full disk or a read-only folder must never leave a half-written or corrupted
LoRA where a previous good one was, so every save goes to a temp file in the same
folder, is flushed to disk, then renamed over the target in one step
(`trainer.files.write_file_atomic_with`).

Metadata follows what sd-scripts writes (docs/ANCHORS.md section 6), because A1111, Forge,
ComfyUI and CivitAI read those keys: ``ss_*`` training facts, ``sshs_model_hash`` (the
SHA-256 of the tensor data, i.e. the file minus its header) and ``modelspec.*``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as serialize
from torch import Tensor

from trainer.config import FIELDS, TrainingConfig
from trainer.files import describe_os_error, write_file_atomic_with

_DTYPES = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "float": torch.float32,
    "fp32": torch.float32,
    "float32": torch.float32,
}
# Keys that may hold credentials; never written into a file that gets shared.
_SECRET = re.compile(r"(api_?key|secret|password|passwd|auth|(^|_)token$|wandb)", re.IGNORECASE)


class SaveError(RuntimeError):
    """A LoRA file could not be written; any previous file at that path is untouched."""


def kohya_dtype(name: str | None) -> torch.dtype:
    """The torch dtype for Kohya's save_precision / mixed_precision names ("fp16", "bf16", "float")."""
    if name is None or name == "":
        return torch.float32
    try:
        return _DTYPES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown precision {name!r}; use one of fp16, bf16, float") from None


def _data_hash(blob: bytes) -> str:
    """SHA-256 of a serialized safetensors file's tensor data (everything after the header)."""
    header_len = int.from_bytes(blob[:8], "little")
    return hashlib.sha256(memoryview(blob)[8 + header_len :]).hexdigest()


def _prepare(tensors: dict[str, Tensor], dtype: torch.dtype) -> dict[str, Tensor]:
    prepared = {}
    for key, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise SaveError(f"refusing to save: {key} contains NaN or inf (training diverged?)")
        cast = tensor.detach().to(device="cpu", dtype=dtype).contiguous()
        if key.endswith(".alpha") and tensor.numel() == 1 and not torch.isfinite(cast).all():
            # a scale, not a weight: LoKr's full-matrix alpha (its rank, e.g. 100000) stays exact
            cast = tensor.detach().to(device="cpu", dtype=torch.float32).contiguous()
        if not torch.isfinite(cast).all():
            raise SaveError(f"refusing to save: {key} overflows in {dtype} (save as bf16 or float instead)")
        prepared[key] = cast
    return prepared


def save_lora(
    path: Path, tensors: dict[str, Tensor], metadata: dict[str, str], dtype: torch.dtype = torch.float16
) -> Path:
    """Save ``tensors`` (cast to ``dtype``) and ``metadata`` to ``path`` atomically.

    Adds ``sshs_model_hash``. Raises SaveError for NaN/inf tensors, non-string metadata,
    or any OS error (message names the path and the cause); the temp file is removed
    and an existing file at ``path`` stays as it was.
    """
    path = Path(path)
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise SaveError(f"metadata values must be strings; not strings: {bad}")
    prepared = _prepare(tensors, dtype)
    # The data section does not depend on the metadata, so hash it once without it.
    meta = {k: v for k, v in metadata.items() if k != "sshs_model_hash"}
    meta["sshs_model_hash"] = _data_hash(serialize(prepared))
    blob = serialize(prepared, metadata=meta)

    def write(tmp: Path) -> None:  # the hidden temp file; a killed run's is cleaned at the next start
        with open(tmp, "wb") as f:
            f.write(blob)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomic_with(path, write)
    except OSError as exc:
        raise SaveError(f"could not save {path}: {describe_os_error(exc)} ({exc})") from exc
    return path


_BASE_VERSION = {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}
_ARCHITECTURE = {
    "sd1": "stable-diffusion-v1/lora",
    "sd2": "stable-diffusion-v2-512/lora",
    "sdxl": "stable-diffusion-xl-v1-base/lora",
}
_SGM_IMPLEMENTATION = "https://github.com/Stability-AI/generative-models"
# Extra settings written when the config has them (sd-scripts writes these too).
_OPTIONAL_SS = (
    "gradient_checkpointing",
    "gradient_accumulation_steps",
    "max_token_length",
    "cache_latents",
    "prior_loss_weight",
    "multires_noise_iterations",
    "multires_noise_discount",
    "noise_offset_type",
    "caption_dropout_every_n_epochs",
    "caption_tag_dropout_rate",
    "max_grad_norm",
    "full_fp16",
    "full_bf16",
    "network_dropout",
    "rank_dropout",
    "module_dropout",
    "bucket_no_upscale",
    "min_bucket_reso",
    "max_bucket_reso",
    "bucket_reso_steps",
    "random_crop",
    "conv_dim",
    "conv_alpha",
)


def _model_name(name: str) -> str:
    """Hub ids as given; local files/folders by their base name (no private paths)."""
    return os.path.basename(os.path.normpath(name)) if os.path.exists(name) else name


def build_metadata(
    cfg: TrainingConfig,
    *,
    arch: str,
    v_parameterization: bool,
    network_args: dict,
    num_train_images: int,
    num_reg_images: int,
    epoch: int,
    steps: int,
    total_epochs: int,
    max_train_steps: int,
    lr_warmup_steps: int,
    bucket_info: dict,
    tag_frequency: dict,
    training_started_at: float,
    resolution: tuple[int, int],
    model_name: str,
    network_module: str = "networks.lora",
) -> dict[str, str]:
    """The ss_* and modelspec.* metadata of one saved LoRA, every value a string.

    ``cfg``: the run's config. A tool that writes a LoRA of its own may pass any object
    with some of its Kohya-named settings; the schema's default stands in for the rest.
    Values are formatted as sd-scripts formats them (str() of the Python value, JSON for
    dicts) so tools that parse them keep working.
    """
    if arch not in _BASE_VERSION:
        raise ValueError(f"arch must be one of {sorted(_BASE_VERSION)}, got {arch!r}")

    def get(name: str) -> Any:  # the schema's default stands in for a setting `cfg` lacks
        return getattr(cfg, name, FIELDS[name].default)

    alpha = get("network_alpha")
    batch = int(get("train_batch_size"))
    total_batch = batch * int(get("gradient_accumulation_steps") or 1) * int(get("num_processes") or 1)
    optimizer = str(get("optimizer"))
    optimizer_args = get("optimizer_args")
    if optimizer_args:
        if isinstance(optimizer_args, (list, tuple)):
            optimizer_args = ",".join(str(a) for a in optimizer_args)
        optimizer += f"({optimizer_args})"
    v2 = arch == "sd2"
    base_version = "sd_v2_v" if v2 and v_parameterization else _BASE_VERSION[arch]
    architecture = "stable-diffusion-v2-768-v/lora" if v2 and v_parameterization else _ARCHITECTURE[arch]
    width, height = resolution
    output_name = str(get("output_name"))
    safe_args = {k: v for k, v in network_args.items() if not _SECRET.search(str(k))}

    meta: dict[str, Any] = {
        "ss_network_module": network_module,
        "ss_network_dim": get("network_dim"),
        "ss_network_alpha": float(alpha) if alpha is not None else None,
        "ss_network_args": json.dumps(safe_args, default=str),
        "ss_learning_rate": get("learning_rate"),
        "ss_unet_lr": get("unet_lr"),
        "ss_text_encoder_lr": get("text_encoder_lr"),
        "ss_optimizer": optimizer,
        "ss_lr_scheduler": get("lr_scheduler"),
        "ss_lr_warmup_steps": lr_warmup_steps,
        "ss_max_train_steps": max_train_steps,
        "ss_num_epochs": total_epochs,
        "ss_epoch": epoch,
        "ss_steps": steps,
        "ss_batch_size_per_device": batch,
        "ss_total_batch_size": total_batch,
        "ss_resolution": (width, height),
        "ss_mixed_precision": get("mixed_precision"),
        "ss_clip_skip": get("clip_skip"),
        "ss_v2": v2,
        "ss_base_model_version": base_version,
        "ss_sd_model_name": _model_name(model_name),
        "ss_seed": get("seed"),
        "ss_output_name": output_name,
        "ss_training_started_at": training_started_at,
        "ss_training_finished_at": time.time(),
        "ss_num_train_images": num_train_images,
        "ss_num_reg_images": num_reg_images,
        "ss_tag_frequency": json.dumps(tag_frequency),
        "ss_bucket_info": json.dumps(bucket_info),
        "ss_noise_offset": get("noise_offset"),
        "ss_min_snr_gamma": get("min_snr_gamma"),
        "ss_caption_dropout_rate": get("caption_dropout_rate"),
        "ss_flip_aug": bool(get("flip_aug")),
        "ss_color_aug": bool(get("color_aug")),
        "ss_shuffle_caption": bool(get("shuffle_caption")),
        "ss_keep_tokens": get("keep_tokens"),
        "ss_enable_bucket": bool(get("enable_bucket")),
        "ss_training_comment": get("training_comment"),
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": architecture,
        "modelspec.implementation": _SGM_IMPLEMENTATION if arch == "sdxl" else "diffusers",
        "modelspec.title": get("metadata_title") or output_name,
        "modelspec.resolution": f"{width}x{height}",
        "modelspec.date": datetime.datetime.now().replace(microsecond=0).isoformat(),
        "modelspec.prediction_type": "v" if v_parameterization else "epsilon",
    }
    for name in _OPTIONAL_SS:
        if hasattr(cfg, name):
            meta[f"ss_{name}"] = get(name)
    if hasattr(cfg, "debiased_estimation_loss"):  # sd-scripts' key for this setting
        meta["ss_debiased_estimation"] = bool(get("debiased_estimation_loss"))
    timesteps = (get("min_timestep"), get("max_timestep"))
    if timesteps != (0, 1000):  # like sd-scripts: only a narrowed range is recorded
        meta["modelspec.timestep_range"] = f"{timesteps[0]},{timesteps[1]}"
    if get("sweep_values"):  # a sweep variant: the settings it varies, as JSON
        meta["ss_sweep"] = get("sweep_values")
    for name in ("author", "description", "license", "tags"):
        if get(f"metadata_{name}"):
            meta[f"modelspec.{name}"] = get(f"metadata_{name}")
    return {k: str(v) for k, v in meta.items()}
