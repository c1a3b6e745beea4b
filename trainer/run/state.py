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
from trainer.files import describe_os_error, write_folder_atomic
from trainer.network.lora_file import SaveError
from trainer.run.rng_state import capture_rng, gather_rng, restore_rng

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
def _model_id(path: str) -> dict:
    """The base model by name (and size for a single file), so a moved model still matches."""
    p = Path(path.strip()).expanduser()
    out: dict[str, Any] = {"name": os.path.basename(os.path.normpath(path.strip())) or path}
    if p.is_file():
        out["bytes"] = p.stat().st_size
    return out


def _files(scan, root: str) -> list[list]:
    if scan is None:
        return []
    base = Path(root).expanduser()
    return sorted([Path(os.path.relpath(item.path, base)).as_posix(), item.repeats] for item in scan.items)


def fingerprint(cfg: TrainingConfig, prepared) -> dict:
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
        "base_model": _model_id(cfg.pretrained_model_name_or_path),
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


def fingerprint_differences(saved: dict, now: dict) -> list[str]:
    """Each difference in words, naming the setting and both values."""
    out = []
    for label, key in (("dataset", "dataset"), ("regularisation dataset", "reg_dataset")):
        diff = _dataset_difference(label, saved.get(key, []), now.get(key, []))
        if diff:
            out.append(diff)
    for group in ("base_model", "model_family", "network", "batching"):
        old, new = saved.get(group, {}), now.get(group, {})
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                what = "base model" if group == "base_model" else key
                out.append(
                    f"{what}: the state was trained with {old.get(key)!r}, this config has {new.get(key)!r}"
                )
    if saved.get("optimizer") != now.get("optimizer"):
        out.append(
            f"optimizer: the state was trained with {saved.get('optimizer')!r}, this "
            f"config has {now.get('optimizer')!r}"
        )
    return out


# ---- reading ------------------------------------------------------------------------------
def read_state_info(folder: str | Path) -> dict:
    """state.json of a state folder. Raises ValueError saying what is wrong with the folder."""
    folder = Path(str(folder).strip()).expanduser()
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


def check_resume(cfg: TrainingConfig, prepared, total_steps: int) -> tuple[list[Problem], list[str]]:
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


def state_info(cfg: TrainingConfig, prepared, position: Position, lora_file: str, total_steps: int) -> dict:
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
    folder = Path(str(folder).strip()).expanduser()
    info = read_state_info(folder)
    weights = load_file(folder / WEIGHTS_FILE)
    training = torch.load(folder / TRAINING_FILE, map_location="cpu", weights_only=True)
    return weights, training, info


# ---- the Run's side ---------------------------------------------------------------------------
class StateKeeper:
    """A Run's training state: where the loop stands, the state saved with each LoRA, and
    the resume before the loop.

    Hooks in the Run, in order: `guarded(saver)` and `resume()` after setup, `start(generator)`
    where the loop begins, `advance(...)` after every optimizer step, `end_epoch(epoch)` when an
    epoch is complete (a state saved then resumes at the next epoch).
    """

    def __init__(self, run, guard) -> None:
        self.run, self.cfg, self.guard = run, run.cfg, guard
        self.position = self.resumed_from = Position()
        self._rng: dict | None = None
        self._rng_by_rank: list | None = None
        self.generator: torch.Generator | None = None

    def guarded(self, saver) -> GuardedSaver:
        return GuardedSaver(saver, self)

    def resume(self) -> None:
        """Clean what a killed run left; with `resume` set, load weights, optimizer, schedule."""
        from trainer.events import Event
        from trainer.files import clean_stale_temps

        run, cfg = self.run, self.cfg
        if run.acc.is_main_process and cfg.output_dir.strip():
            for note in clean_stale_temps(Path(cfg.output_dir)):
                run.emit(Event("log", {"message": note}))
        if not cfg.resume.strip():
            return
        from trainer.run.guards import TrainingError

        try:
            weights, training, info = load_training(cfg.resume)
        except Exception as exc:  # noqa: BLE001 - a damaged file, whichever library reads it
            raise TrainingError(
                f"the training state {cfg.resume} cannot be read ({exc}); resume "
                "from an earlier -state folder"
            ) from None
        try:
            run.network.load_state_dict(weights, strict=True)
            run.optimizer.load_state_dict(training["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise TrainingError(
                f"the training state {cfg.resume} does not fit this network or "
                f"optimizer ({exc}); start a new run or use matching settings"
            ) from None
        from trainer.optim.optimizers import set_train_mode

        set_train_mode(run.optimizer)  # a schedule-free state holds the average: back to training
        run.scheduler.load_state_dict(training["scheduler"])
        scaler = getattr(run.acc, "scaler", None)
        if scaler is not None and training.get("scaler"):
            scaler.load_state_dict(training["scaler"])
        self.position = self.resumed_from = Position(**info["position"])
        self._rng = training["rng"]
        self._rng_by_rank = training.get("rng_by_rank")  # several processes: each one's
        run.emit(
            Event(
                "log",
                {
                    "message": f"Resumed from {cfg.resume}: epoch {self.resumed_from.epoch}, "
                    f"step {self.resumed_from.step}"
                },
            )
        )

    def start(self, generator: torch.Generator) -> Position:
        """Where the loop begins; on a resume every random generator is put back first."""
        self.generator = generator
        if self._rng is not None:
            acc = self.run.acc
            by_rank = self._rng_by_rank
            if not by_rank or len(by_rank) != acc.num_processes:
                by_rank = None
            if by_rank is not None or acc.process_index == 0:
                rng = by_rank[acc.process_index] if by_rank is not None else self._rng
                if not restore_rng(rng, generator):
                    from trainer.events import Event

                    self.run.emit(
                        Event(
                            "warning",
                            {
                                "message": (
                                    f"{self.cfg.resume} was saved on a {self._rng['generator_device'].upper()}, "
                                    f"this run is on a {generator.device.type.upper()}: training continues, but "
                                    "its noise differs from the run that saved it"
                                )
                            },
                        )
                    )
            else:  # saved by another number of processes: the others get a fresh seed
                generator.manual_seed(self.cfg.seed + acc.process_index + 1_000_003 * self.resumed_from.step)
        return self.resumed_from

    def advance(self, epoch: int, batches_done: int, step: int) -> None:
        self.position = Position(epoch, batches_done, step)

    def end_epoch(self, epoch: int, num_batches: int) -> None:
        """Once every batch of `epoch` is trained, a state saved from now on starts the next one.

        A run that stopped at an epoch's last batch keeps pointing into that epoch, so the
        resumed run still does that epoch's end (its save, its samples)."""
        p = self.position
        if p.epoch == epoch and p.batches_done >= num_batches:
            self.position = Position(epoch + 1, 0, p.step)

    def wants_state(self, final: bool) -> bool:
        """save_state: with every save; save_state_on_train_end: at the end and on Stop."""
        ending = final or self.run.stop.is_set()
        return self.cfg.save_state or (self.cfg.save_state_on_train_end and ending)

    def save(self, lora_path: Path, final: bool = False, rng_by_rank: list | None = None) -> Path:
        """Write `<lora name>-state` for the current position (main process only);
        `rng_by_rank`: every process's generators (`gather_rng`) when there are several."""
        from trainer.events import Event

        run = self.run
        scaler = getattr(run.acc, "scaler", None)
        training = {
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": capture_rng(self.generator),
            "rng_by_rank": rng_by_rank,
        }
        info = state_info(self.cfg, run.prepared, self.position, Path(lora_path).name, run.plan.total_steps)
        folder = write_state(
            state_dir_for(lora_path), weights=run.network.state_dict(), training=training, info=info
        )
        run.emit(
            Event(
                "saved",
                {
                    "path": str(folder),
                    "epoch": self.position.epoch,
                    "step": self.position.step,
                    "final": final,
                    "state": True,
                },
            )
        )
        return folder


class GuardedSaver:
    """The Run's LoRA saver with the guarantees around it: the loss is checked before every
    save (no NaN weights over a good file), and the training state is written after it.
    A schedule-free optimizer's averaged weights are what both hold (trainer.optim.optimizers)."""

    def __init__(self, inner, keeper: StateKeeper) -> None:
        self.inner, self.keeper = inner, keeper

    def save(self, *args, **kwargs) -> Path:
        from trainer.optim.optimizers import averaged_weights

        self.keeper.guard.check()
        with averaged_weights(self.keeper.run.optimizer):  # every process, so they stay alike
            path = self.inner.save(*args, **kwargs)
            final = bool(kwargs.get("final", False))
            if self.keeper.wants_state(final):  # the same answer on every process
                acc = self.keeper.run.acc
                rngs = gather_rng(self.keeper.generator, acc.num_processes)  # all processes at once
                if acc.is_main_process:
                    self.keeper.save(path, final, rngs)
        return path

    def __getattr__(self, name: str):
        return getattr(self.inner, name)
