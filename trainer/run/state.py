"""The training state: written beside a LoRA, checked against the config, resumed from.

A state folder is named after the LoRA saved with it, as sd-scripts names them:
`<output_name>-000002-state` beside `<output_name>-000002.safetensors`, `<output_name>-state`
beside the final file, `<output_name>-stopped-<step>-state` after Stop. It holds

    state.json         position (epoch, batches done in it, step), the fingerprint of the
                       settings that must match to resume, the config (no secrets)
    lora.safetensors   the LoRA weights in float32, the network's own names
    training.pt        optimizer, LR scheduler, grad scaler and every random generator
                       (read back with torch.load(weights_only=True): tensors and plain values)

and is written to a hidden temporary folder, flushed, then renamed into place
(`trainer.files.write_folder_atomic`), so a folder under its real name is always complete.
The run's side (its position, the resume, the state written with each save) is
`trainer.run.state_keeper`.

Resuming gives the same run as one that never stopped: the weights, optimizer and
schedule come back before the loop, every random generator right at its start, and the
loop skips the batches already trained in the epoch it stopped in.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as serialize

from trainer.config import Problem, TrainingConfig, preset_dict
from trainer.data.resolved import ResolvedDataset
from trainer.files import describe_os_error, interrupted_backup, write_folder_atomic
from trainer.models.identity import model_identity
from trainer.network.lora_file import SaveError

STATE_FORMAT = 1
STATE_FILE, WEIGHTS_FILE, TRAINING_FILE = "state.json", "lora.safetensors", "training.pt"
_LIST_LIMIT = 5  # file names shown per kind of dataset difference


@dataclass(frozen=True)
class Position:
    """Where the loop stands: `batches_done` batches of epoch `epoch` (from 1) are trained,
    `step` optimizer steps in all. A state saved at an epoch's end points at the next epoch."""

    epoch: int = 1
    batches_done: int = 0
    step: int = 0


def state_dir_for(lora_path: str | Path) -> Path:
    """`out/name-000002.safetensors` -> `out/name-000002-state` (sd-scripts' naming)."""
    p = Path(lora_path)
    return p.with_name(f"{p.stem}-state")


# ---- fingerprint: what must match to resume -------------------------------------------------
def _files(scan, root: str) -> list[list]:
    if scan is None:
        return []
    base = Path(root).expanduser()
    return sorted([Path(os.path.relpath(item.path, base)).as_posix(), item.repeats] for item in scan.items)


def fingerprint(cfg: TrainingConfig, prepared: ResolvedDataset) -> dict:
    """The settings a state is only valid with: base model, network, optimizer, batching, data."""
    lora_type = cfg.LoRA_type
    network: dict[str, Any] = {
        "LoRA_type": lora_type,
        "network_dim": cfg.network_dim,
        "network_alpha": cfg.network_alpha,
        "network_train_unet_only": cfg.network_train_unet_only,
        "network_train_text_encoder_only": cfg.network_train_text_encoder_only,
    }
    if lora_type != "Standard":  # LoCon and the LyCORIS types train convolutions too
        network.update(conv_dim=cfg.conv_dim, conv_alpha=cfg.conv_alpha)
    return {
        "base_model": model_identity(cfg.pretrained_model_name_or_path),
        "model_family": {"v2": cfg.v2, "sdxl": cfg.sdxl, "v_parameterization": cfg.v_parameterization},
        "network": network,
        "optimizer": cfg.optimizer,
        "batching": {
            "train_batch_size": cfg.train_batch_size,
            "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        },
        "dataset": _files(prepared.scan, cfg.train_data_dir),
        "reg_dataset": _files(prepared.reg_scan, cfg.reg_data_dir),
    }


def _dataset_difference(label: str, saved: list, now: list) -> str | None:
    old, new = {p: r for p, r in saved}, {p: r for p, r in now}
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(p for p in set(old) & set(new) if old[p] != new[p])
    if not (added or removed or changed):
        return None

    def some(names: list[str]) -> str:
        more = f" and {len(names) - _LIST_LIMIT} more" if len(names) > _LIST_LIMIT else ""
        return ", ".join(names[:_LIST_LIMIT]) + more

    parts = [
        f"{len(added)} image(s) added ({some(added)})" if added else "",
        f"{len(removed)} removed ({some(removed)})" if removed else "",
        f"{len(changed)} with other repeats ({some(changed)})" if changed else "",
    ]
    return f"the {label} differs from the one the state was trained on: " + ", ".join(p for p in parts if p)


def _model_difference(old: dict, new: dict) -> str | None:
    """The base model compared by its weights (trainer.models.identity): a renamed or moved
    copy matches, another model under the same name does not. States written before the
    weights were recorded are compared by name and size."""
    if "weights" in old and "weights" in new:
        if old["weights"] == new["weights"]:
            return None

        def shown(m: dict) -> str:
            return f"{m.get('name')!r} ({m.get('bytes', 0):,} bytes of weights, digest {m['weights']})"

        return (
            f"base model: the state was trained on {shown(old)}, this config's model is {shown(new)}: "
            "other weights" + (" under the same name" if old.get("name") == new.get("name") else "")
        )
    for key in ("name", "bytes"):
        if key in old and old.get(key) != new.get(key):
            return (
                f"base model: the state was trained with {old.get(key)!r}, this config has {new.get(key)!r}"
            )
    return None


def fingerprint_differences(saved: dict, now: dict) -> list[str]:
    """Each difference in words, naming the setting and both values."""
    out = []
    for label, key in (("dataset", "dataset"), ("regularisation dataset", "reg_dataset")):
        diff = _dataset_difference(label, saved.get(key, []), now.get(key, []))
        if diff:
            out.append(diff)
    model = _model_difference(saved.get("base_model", {}), now.get("base_model", {}))
    if model:
        out.append(model)
    for group in ("model_family", "network", "batching"):
        old, new = saved.get(group, {}), now.get(group, {})
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                out.append(
                    f"{key}: the state was trained with {old.get(key)!r}, this config has {new.get(key)!r}"
                )
    if saved.get("optimizer") != now.get("optimizer"):
        out.append(
            f"optimizer: the state was trained with {saved.get('optimizer')!r}, this "
            f"config has {now.get('optimizer')!r}"
        )
    return out


# ---- reading ------------------------------------------------------------------------------
def state_location(folder: str | Path) -> Path:
    """Where the state `folder` is read from: itself, or, when a save was killed between the
    two renames that replace it (trainer.files.replace_dir), the complete older state it had
    moved aside (`.<name>.old-<pid>`), which the run puts back before it loads anything."""
    folder = Path(str(folder).strip()).expanduser()
    if folder.exists():
        return folder
    return interrupted_backup(folder) or folder


def read_state_info(folder: str | Path) -> dict:
    """state.json of a state folder. Raises ValueError saying what is wrong with the folder."""
    folder = state_location(folder)
    if folder.is_file():
        hint = f" (its state is {state_dir_for(folder)})" if folder.suffix == ".safetensors" else ""
        raise ValueError(f"{folder} is a file; choose the training-state folder{hint}")
    if not folder.is_dir():
        raise ValueError(f"{folder} does not exist")
    missing = [n for n in (STATE_FILE, WEIGHTS_FILE, TRAINING_FILE) if not (folder / n).is_file()]
    if missing:
        raise ValueError(
            f"{folder} is not a training-state folder (no {', '.join(missing)}); "
            "states are written with Save training state, as <name>-state"
        )
    try:
        info = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{folder / STATE_FILE} cannot be read ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != STATE_FORMAT:
        raise ValueError(
            f"{folder} was written by another version of the trainer "
            f"(state format {info.get('format') if isinstance(info, dict) else '?'}, "
            f"this one reads {STATE_FORMAT})"
        )
    pos = info.get("position")
    if not (
        isinstance(pos, dict)
        and set(pos) == {"epoch", "batches_done", "step"}
        and all(isinstance(v, int) and v >= 0 for v in pos.values())
        and isinstance(info.get("fingerprint"), dict)
    ):
        raise ValueError(f"{folder / STATE_FILE} is damaged (no valid position or fingerprint)")
    return info


def check_resume(
    cfg: TrainingConfig, prepared: ResolvedDataset, total_steps: int
) -> tuple[list[Problem], list[str]]:
    """Problems (the state cannot continue this config) and notes, before any model loads."""
    if not cfg.resume.strip():
        return [], []
    try:
        info = read_state_info(cfg.resume)
    except ValueError as exc:
        return [Problem("resume", str(exc))], []
    diffs = fingerprint_differences(info.get("fingerprint", {}), fingerprint(cfg, prepared))
    if diffs:
        return [
            Problem(
                "resume",
                f"{cfg.resume} does not match this config: {d}. Use the same "
                "settings as the run that saved it, or start a new run",
            )
            for d in diffs
        ], []
    pos = Position(**info["position"])
    if pos.step >= total_steps:
        return [
            Problem(
                "resume",
                f"{cfg.resume} is at step {pos.step} and this config trains "
                f"{total_steps} steps in all: nothing is left to train. Raise epoch or "
                "max_train_steps to train longer",
            )
        ], []
    notes = [f"resuming from {cfg.resume}: epoch {pos.epoch}, step {pos.step} of {total_steps}"]
    found = state_location(cfg.resume)
    if found.name != Path(cfg.resume.strip()).name:
        notes.append(
            f"{cfg.resume} was left as {found} by a save that was interrupted while replacing it; "
            "the run puts it back under its name"
        )
    old_cfg = info.get("config", {})
    for key in ("seed", "max_resolution", "learning_rate", "lr_scheduler"):
        if key in old_cfg and old_cfg[key] != getattr(cfg, key):
            notes.append(
                f"resume: {key} was {old_cfg[key]!r} in the saved run and is "
                f"{getattr(cfg, key)!r} now; the run continues with the new value"
            )
    return [], notes


# ---- writing ------------------------------------------------------------------------------
def write_state(folder: Path, *, weights: dict[str, torch.Tensor], training: dict, info: dict) -> Path:
    """Write a complete state folder atomically. Raises SaveError; an older folder of the
    same name then stays as it was."""
    for key, tensor in weights.items():
        if not torch.isfinite(tensor).all():
            raise SaveError(f"refusing to save the training state: {key} contains NaN or inf")

    def fill(tmp: Path) -> None:
        (tmp / WEIGHTS_FILE).write_bytes(
            serialize({k: v.detach().to("cpu").contiguous() for k, v in weights.items()})
        )
        buf = io.BytesIO()
        torch.save(training, buf)
        (tmp / TRAINING_FILE).write_bytes(buf.getvalue())
        text = json.dumps(info, indent=2, ensure_ascii=False, default=str) + "\n"
        (tmp / STATE_FILE).write_bytes(text.encode("utf-8"))

    try:
        return write_folder_atomic(folder, fill)
    except OSError as exc:
        raise SaveError(
            f"could not save the training state {folder}: {describe_os_error(exc)} "
            f"({exc}); an earlier state of that name is unchanged"
        ) from exc


def state_info(
    cfg: TrainingConfig, prepared: ResolvedDataset, position: Position, lora_file: str, total_steps: int
) -> dict:
    """The contents of state.json (secrets are never in it: preset_dict leaves them out)."""
    config = preset_dict(cfg)
    config.pop("resume", None)
    return {
        "format": STATE_FORMAT,
        "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "lora_file": lora_file,
        "position": asdict(position),
        "total_steps": total_steps,
        "fingerprint": fingerprint(cfg, prepared),
        "config": config,
    }


def load_training(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """(weights, training blob, state.json) of a state folder, on the CPU."""
    folder = state_location(folder)
    info = read_state_info(folder)
    weights = load_file(folder / WEIGHTS_FILE)
    training = torch.load(folder / TRAINING_FILE, map_location="cpu", weights_only=True)
    return weights, training, info
