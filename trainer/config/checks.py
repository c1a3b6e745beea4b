"""Rules between settings, checked without touching the disk or loading a model.

Returns (errors, warnings). Errors block training; warnings are advice (the seed guide's).
Disk and device checks (folders exist, fp16 on a CPU, bitsandbytes present) live in
`trainer.run.preflight`, which runs before any model loads.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from trainer.config.checks_training import training_option_checks  # optimizer, noise, loss, network rules
from trainer.config.problems import Problem

if TYPE_CHECKING:
    from trainer.config.model import TrainingConfig

_WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}
_BAD_NAME_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
# File systems hold 255 bytes per name (ext4, btrfs; NTFS 255 UTF-16 units). The longest
# name a run writes is the hidden temporary of a Stop save with a 10-digit step and pid.
_MAX_NAME_BYTES = 255
_LONGEST_WRITE = ".{name}-stopped-9999999999.safetensors.tmp-9999999"
MAX_OUTPUT_NAME_BYTES = _MAX_NAME_BYTES - len(_LONGEST_WRITE.format(name="").encode())
# A caption extension: an optional dot and letters, digits, '_' or '-' (".txt", ".caption").
_CAPTION_EXTENSION = re.compile(r"^\.?[A-Za-z0-9_-]{1,32}$")


def parse_resolution(text: str) -> tuple[int, int]:
    """'512,512' or '512' -> (w, h); raises ValueError with a readable reason."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{text!r} is not 'width,height' (for example '512,512')")
    w, h = int(parts[0]), int(parts[1])
    for side in (w, h):
        if side < 64 or side % 64:
            raise ValueError(f"{text!r}: each side must be a multiple of 64 and at least 64")
    return w, h


def output_name_problem(name: str) -> str | None:
    """Why a LoRA file name cannot be used, or None."""
    if not name.strip():
        return "is empty; give the LoRA a file name, e.g. 'mychar'"
    if "/" in name or "\\" in name or ".." in name:
        return f"{name!r} must be a plain file name, without folders or '..'"
    if _BAD_NAME_CHARS.search(name):
        return f'{name!r} contains a character that Windows does not allow (<>:"/\\|?*)'
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        return f"{name!r} is a reserved device name on Windows; choose another name"
    if len(name) > 150:
        return f"is {len(name)} characters long; keep it under 150"
    size = len(name.encode("utf-8"))
    if size > MAX_OUTPUT_NAME_BYTES:
        return (
            f"is {size} bytes long in UTF-8 (Japanese and other non-Latin characters take 3 bytes "
            f"each); the run's longest file name adds {len(_LONGEST_WRITE.format(name='').encode())} "
            f"bytes and a file name holds {_MAX_NAME_BYTES}: keep it at {MAX_OUTPUT_NAME_BYTES} bytes "
            f"or less (about {MAX_OUTPUT_NAME_BYTES // 3} Japanese characters)"
        )
    if name != name.strip() or name.endswith("."):
        return f"{name!r} starts or ends with a space or dot, which Windows strips"
    return None


def _text_cache_problems(cfg: TrainingConfig) -> list[Problem]:
    """cache_text_encoder_outputs keeps one encoding per caption: nothing may change it."""
    if not cfg.cache_text_encoder_outputs:
        return []
    problems = []
    if not cfg.network_train_unet_only:
        problems.append(
            Problem(
                "cache_text_encoder_outputs",
                "needs network_train_unet_only: a text "
                "encoder that trains changes its outputs, so they cannot be cached",
            )
        )
    changing = [
        key
        for key in (
            "shuffle_caption",
            "caption_dropout_rate",
            "caption_dropout_every_n_epochs",
            "caption_tag_dropout_rate",
            "enable_wildcard",
        )
        if getattr(cfg, key)
    ]
    if changing:
        problems.append(
            Problem(
                "cache_text_encoder_outputs",
                f"cannot be used with {', '.join(changing)}: "
                "the caption would change from step to step, but its encoding is cached "
                "once. Turn those off, or turn the cache off",
            )
        )
    return problems


def _sample_warnings(cfg: TrainingConfig) -> list[str]:
    """Sample settings that would silently do nothing (Kohya's precedence kept)."""
    notes = []
    scheduled = cfg.sample_every_n_steps > 0 or cfg.sample_every_n_epochs > 0 or cfg.sample_at_first
    if scheduled and not cfg.sample_prompts.strip():
        notes.append("sample images are scheduled but sample_prompts is empty: no samples will be made")
    if cfg.sample_every_n_steps > 0 and cfg.sample_every_n_epochs > 0:
        notes.append("sample_every_n_epochs is set, so sample_every_n_steps is not used (as in Kohya)")
    return notes


def rank_problems(cfg: TrainingConfig) -> list[Problem]:
    """Ranks above 1024 only mean something to LoKr (a full, undecomposed matrix)."""
    if cfg.LoRA_type == "LyCORIS/LoKr":
        return []
    return [
        Problem(
            key,
            f"{getattr(cfg, key)} is above 1024; only LyCORIS/LoKr takes such a value "
            "(it means a full matrix there). Use 1024 or less",
        )
        for key in ("network_dim", "conv_dim")
        if getattr(cfg, key) > 1024
    ]


def gpu_id_list(text: str) -> list[str]:
    """'0, 1' -> ['0', '1'] (the `gpu_ids` setting as written; empty = none chosen)."""
    return [part.strip() for part in str(text or "").split(",")] if str(text or "").strip() else []


def launch_problems(cfg: TrainingConfig) -> list[Problem]:
    """gpu_ids: GPU numbers, at least as many as processes."""
    ids = gpu_id_list(cfg.gpu_ids)
    if ids and not all(part.isdigit() for part in ids):
        return [Problem("gpu_ids", f"{cfg.gpu_ids!r} must be GPU numbers separated by commas, e.g. 0,1")]
    if ids and len(ids) < cfg.num_processes:
        return [
            Problem(
                "gpu_ids",
                f"lists {len(ids)} GPU(s) for {cfg.num_processes} processes; "
                "list one GPU per process, or lower num_processes",
            )
        ]
    return []


def _precision_problems(cfg: TrainingConfig) -> list[Problem]:
    """full_fp16 / full_bf16 with the mixed precision and optimizer they need."""
    problems: list[Problem] = []
    if cfg.full_fp16 and cfg.mixed_precision != "fp16":
        problems.append(Problem("full_fp16", "needs mixed_precision 'fp16'"))
    if cfg.full_fp16 and "ScheduleFree" in cfg.optimizer:  # trainer.optim.fp32_math
        problems.append(
            Problem(
                "full_fp16",
                f"{cfg.optimizer} does its math in the fp16 LoRA weights, where small gradients "
                "overflow to inf: turn full_fp16 off, or choose AdamW / AdamW8bit",
            )
        )
    if cfg.full_bf16 and cfg.mixed_precision != "bf16":
        problems.append(Problem("full_bf16", "needs mixed_precision 'bf16'"))
    if cfg.full_fp16 and cfg.full_bf16:
        problems.append(Problem("full_bf16", "cannot be on together with full_fp16"))
    return problems


def check_config(cfg: TrainingConfig) -> tuple[list[Problem], list[str]]:
    errors: list[Problem] = []
    warnings: list[str] = []
    for key, what in (
        ("pretrained_model_name_or_path", "the base model"),
        ("train_data_dir", "the image folder"),
        ("output_dir", "the output folder"),
    ):
        if key == "train_data_dir" and cfg.dataset_config.strip():
            continue  # the dataset config lists the image folders
        if not getattr(cfg, key).strip():
            errors.append(Problem(key, f"is empty; choose {what}"))
    msg = output_name_problem(cfg.output_name)
    if msg:
        errors.append(Problem("output_name", msg))
    ext = cfg.caption_extension
    if ext.strip() and not _CAPTION_EXTENSION.match(ext):
        errors.append(
            Problem(
                "caption_extension",
                f"{cfg.caption_extension!r} must be a file extension such as '.txt' or '.caption': "
                "a dot and letters or digits, without folders",
            )
        )
    try:
        parse_resolution(cfg.max_resolution)
    except ValueError as exc:
        errors.append(Problem("max_resolution", str(exc)))
    if cfg.min_bucket_reso > cfg.max_bucket_reso:
        errors.append(
            Problem(
                "min_bucket_reso",
                f"{cfg.min_bucket_reso} is larger than max_bucket_reso {cfg.max_bucket_reso}",
            )
        )
    if cfg.network_train_unet_only and cfg.network_train_text_encoder_only:
        errors.append(
            Problem(
                "network_train_text_encoder_only",
                "cannot be on together with network_train_unet_only: nothing would train",
            )
        )
    errors.extend(_text_cache_problems(cfg))
    errors.extend(launch_problems(cfg))
    errors.extend(rank_problems(cfg))
    if cfg.v2 and cfg.sdxl:
        errors.append(Problem("sdxl", "v2 and SDXL cannot both be on; pick the model's family"))
    errors.extend(_precision_problems(cfg))
    if cfg.max_train_steps > 0:
        warnings.append(
            f"max_train_steps {cfg.max_train_steps} is set: it decides the length "
            "of the run and the epoch count follows from it (as in Kohya)"
        )
    augmenting = [key for key in ("random_crop", "color_aug") if getattr(cfg, key)]
    if augmenting and (cfg.cache_latents or cfg.cache_latents_to_disk):
        warnings.append(
            f"{' and '.join(augmenting)} change{'s' if len(augmenting) == 1 else ''} "
            "the image each time, so latents cannot be cached: the latent cache "
            "is off for this run"
        )
    warnings.extend(_sample_warnings(cfg))
    more_errors, more_warnings = training_option_checks(cfg)
    errors.extend(more_errors)
    warnings.extend(more_warnings)
    return errors, warnings
