"""Measured steps kept by model and settings, in memory and on disk, so a repeat is instant.

A measured step takes seconds (a full-size SDXL one tens of seconds on two cores), and the GUI
asks again every time a field changes. Each measured step is stored under a key made of
the model's identity (path, size, date), the settings that can change a step (every
setting except the ones listed in `IRRELEVANT`, so a setting added later counts until
someone lists it), the bucket, this estimator's version and the library versions it
followed. Files are `<key>.json` in the app's settings folder (`~/.lora_gui/estimates`,
or `$LORA_GUI_ESTIMATES`), written to a temporary file and renamed.

Pure Python (no torch).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

VERSION = 3  # raise when what a measured step holds, or how it is measured, changes

# Settings that change no training step: names, folders, saving, sampling, logging,
# schedule lengths (they change the run's time, which is computed outside the cache) and
# the values of learning rates (their presence still counts: see _rate_keys).
IRRELEVANT = {
    "output_dir", "output_name", "logging_dir", "train_data_dir", "reg_data_dir", "resume",
    "save_every_n_epochs", "save_every_n_steps", "save_last_n_epochs", "save_last_n_epochs_state",
    "save_last_n_steps", "save_last_n_steps_state", "save_model_as", "save_precision", "save_state",
    "save_state_on_train_end", "sample_at_first", "sample_every_n_epochs", "sample_every_n_steps",
    "sample_prompts", "sample_sampler", "seed", "epoch", "max_train_epochs", "max_train_steps",
    "lr_scheduler", "lr_scheduler_args", "lr_scheduler_num_cycles", "lr_scheduler_power",
    "lr_scheduler_type", "lr_warmup", "lr_warmup_steps", "training_comment", "metadata_author",
    "metadata_description", "metadata_license", "metadata_tags", "metadata_title", "huggingface_token",
    "num_processes", "gpu_ids", "main_process_port", "num_cpu_threads_per_process",
    "max_data_loader_n_workers", "persistent_data_loader_workers", "caption_extension", "keep_tokens",
    "keep_tokens_separator", "secondary_separator", "caption_prefix", "caption_suffix", "num_repeats",
    "sweep_values",
}  # fmt: skip
_RATES = ("learning_rate", "unet_lr", "text_encoder_lr")

_memory: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


def cache_dir() -> Path:
    """Where measured steps are kept on disk."""
    return Path(os.environ.get("LORA_GUI_ESTIMATES") or Path.home() / ".lora_gui" / "estimates")


def relevant_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a step depends on; a learning rate only by being zero or not."""
    out = {k: v for k, v in settings.items() if k not in IRRELEVANT and k not in _RATES}
    out.update({k: bool(settings.get(k)) for k in _RATES})
    return out


def step_key(model_identity: str, settings: dict[str, Any], bucket: tuple[int, int], versions: str) -> str:
    text = json.dumps(
        [VERSION, versions, model_identity, relevant_settings(settings), list(bucket)],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def load(key: str, folder: Path | None = None) -> dict[str, Any] | None:
    """A stored step, from memory or disk, or None."""
    with _lock:
        if key in _memory:
            return _memory[key]
    path = (folder or cache_dir()) / f"{key}.json"
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(value, dict):
        return None
    with _lock:
        _memory[key] = value
    return value


def store(key: str, value: dict[str, Any], folder: Path | None = None) -> None:
    """Keep a step in memory and, where the folder can be written, on disk."""
    with _lock:
        _memory[key] = value
    folder = folder or cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(value), encoding="utf-8")
        os.replace(tmp, folder / f"{key}.json")
    except OSError:
        pass  # a read-only home: the memory cache still answers repeats in this process


def forget_memory() -> None:
    """Drop the in-memory copies (tests; the disk stays)."""
    with _lock:
        _memory.clear()
