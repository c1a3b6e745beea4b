"""Read a Kohya GUI (kohya_ss) preset as it is: old keys migrated, strings made values.

Imports nothing of ours, so it can be tested and reused on its own. The output is a
plain dict for `trainer.config.config_from_dict`, plus notes that say what was changed.
"""
from __future__ import annotations

from typing import Any

# Kohya writes numbers as strings in older presets; an empty string there meant "default".
_NUMERIC_STRING_KEYS = frozenset({
    "learning_rate", "unet_lr", "text_encoder_lr", "lr_warmup", "epoch", "max_train_epochs",
    "max_train_steps", "save_every_n_epochs", "train_batch_size", "seed", "network_dim",
    "network_alpha", "conv_dim", "conv_alpha", "clip_skip", "max_token_length",
    "keep_tokens", "noise_offset", "min_snr_gamma", "prior_loss_weight", "caption_dropout_rate",
    "caption_dropout_every_n_epochs", "caption_tag_dropout_rate", "min_bucket_reso",
    "max_bucket_reso", "num_cpu_threads_per_process", "max_data_loader_n_workers",
    "gradient_accumulation_steps", "multires_noise_iterations", "multires_noise_discount",
    "lr_scheduler_num_cycles", "lr_scheduler_power", "network_dropout", "rank_dropout",
    "module_dropout", "bucket_reso_steps", "max_grad_norm", "lr_warmup_steps",
    "save_every_n_steps", "save_last_n_epochs", "save_last_n_steps", "sample_every_n_steps",
    "sample_every_n_epochs",
})


# The Parameters / Advanced options (optimizer, noise, loss, network), also strings at times.
_NUMERIC_STRING_KEYS = _NUMERIC_STRING_KEYS | {
    "adaptive_noise_scale", "ip_noise_gamma", "huber_c", "huber_scale", "loraplus_lr_ratio",
    "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio", "scale_weight_norms",
    "block_lr_zero_threshold", "stop_text_encoder_training", "stop_text_encoder_training_pct",
    "factor",
}


def _migrate_training_options(values: dict[str, Any], notes: list[str]) -> None:
    """Kohya spellings of the optimizer / network / text-encoder options -> ours (in place)."""
    if "stop_text_encoder_training_pct" in values:
        # Newer kohya_ss files name the percentage so; older LoRA presets use the plain key.
        pct = values.pop("stop_text_encoder_training_pct")
        if "stop_text_encoder_training" not in values or not values["stop_text_encoder_training"]:
            values["stop_text_encoder_training"] = pct
    if values.get("LoRA_type") == "LoCon":
        values["LoRA_type"] = "LyCORIS/LoCon"  # the Kohya GUI runs "LoCon" as lycoris' LoCon
        notes.append("LoRA_type: 'LoCon' -> 'LyCORIS/LoCon'")
    for key in ("down_lr_weight", "mid_lr_weight", "up_lr_weight"):
        value = values.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values[key] = str(value)
        elif isinstance(value, (list, tuple)):
            values[key] = ",".join(str(v) for v in value)


def _number(text: str) -> Any:
    """'1e-4' -> 0.0001, '10' -> 10; anything else is returned unchanged for validation to name."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def migrate_kohya(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Turn a kohya_ss preset into our flat dict; returns (values, notes about changes)."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in raw.items():
        if key == "use_8bit_adam":
            if value is True and "optimizer" not in raw:
                values["optimizer"] = "AdamW8bit"
                notes.append("use_8bit_adam: true -> optimizer 'AdamW8bit'")
            continue
        if key == "xformers" and isinstance(value, bool):
            values["xformers"] = "xformers" if value else "sdpa"
            notes.append(f"xformers: {value} -> '{values['xformers']}'")
            continue
        if key in _NUMERIC_STRING_KEYS and value is None:
            continue  # Kohya writes null for an unset number: its default
        if key in _NUMERIC_STRING_KEYS and isinstance(value, str) and value == value.strip():
            if value == "":
                continue  # Kohya's empty field = its default
            values[key] = _number(value)
            continue
        values[key] = value
    _migrate_training_options(values, notes)
    if values.get("seed") in (-1,):
        values.pop("seed")
        notes.append("seed: -1 (random in Kohya) -> the default fixed seed")
    return values, notes
