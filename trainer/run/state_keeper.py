"""The run's side of a training state: where the loop stands, the resume before the loop,
and the state written beside a LoRA (the folder's format is trainer.run.state).

Kept apart from the Run so that it holds no Run: the objects a state saves and restores
are handed over as `TrainingObjects`, the rest (processes, events) as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.config import TrainingConfig
from trainer.data.resolved import ResolvedDataset
from trainer.events import Event, EventCallback
from trainer.run.guards import TrainingError
from trainer.run.rng_state import capture_rng, restore_rng
from trainer.run.state import Position, load_training, state_dir_for, state_info, write_state


@dataclass(frozen=True)
class TrainingObjects:
    """What a training state holds besides the position and the random generators."""

    network: torch.nn.Module  # the LoRA weights (the network's own names)
    optimizer: torch.optim.Optimizer
    scheduler: Any  # the LR schedule (torch's LRScheduler or one of trainer.optim's)
    scaler: Any  # fp16's grad scaler, or None


class StateKeeper:
    """A run's position, the resume before the loop and the state written with a save.

    The run calls, in order: `resume(...)` after setup, `start(generator, ...)` where the
    loop begins, `advance(...)` after every optimizer step, `end_epoch(...)` when an epoch
    is complete (a state saved then resumes at the next epoch), and `write(...)` from a
    save (trainer.run.save_point).
    """

    def __init__(self, cfg: TrainingConfig, prepared: ResolvedDataset, total_steps: int) -> None:
        self.cfg, self.prepared, self.total_steps = cfg, prepared, total_steps
        self.position = self.resumed_from = Position()
        self._rng: dict | None = None
        self._rng_by_rank: list | None = None
        self.generator: torch.Generator | None = None

    def resume(self, training: TrainingObjects, emit: EventCallback) -> None:
        """With `resume` set: load the weights, optimizer, schedule and grad scaler."""
        cfg = self.cfg
        if not cfg.resume.strip():
            return
        try:
            weights, blob, info = load_training(cfg.resume)
        except Exception as exc:  # noqa: BLE001 - a damaged file, whichever library reads it
            raise TrainingError(
                f"the training state {cfg.resume} cannot be read ({exc}); resume "
                "from an earlier -state folder"
            ) from None
        try:
            training.network.load_state_dict(weights, strict=True)
            training.optimizer.load_state_dict(blob["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise TrainingError(
                f"the training state {cfg.resume} does not fit this network or "
                f"optimizer ({exc}); start a new run or use matching settings"
            ) from None
        from trainer.optim.optimizers import set_train_mode

        set_train_mode(training.optimizer)  # a schedule-free state holds the average: back to training
        training.scheduler.load_state_dict(blob["scheduler"])
        if training.scaler is not None and blob.get("scaler"):
            training.scaler.load_state_dict(blob["scaler"])
        self.position = self.resumed_from = Position(**info["position"])
        self._rng = blob["rng"]
        self._rng_by_rank = blob.get("rng_by_rank")  # several processes: each one's
        at = self.resumed_from
        emit(Event("log", {"message": f"Resumed from {cfg.resume}: epoch {at.epoch}, step {at.step}"}))

    def start(
        self, generator: torch.Generator, *, process_index: int, num_processes: int, emit: EventCallback
    ) -> Position:
        """Where the loop begins; on a resume every random generator is put back first."""
        self.generator = generator
        if self._rng is None:
            return self.resumed_from
        by_rank = self._rng_by_rank
        if not by_rank or len(by_rank) != num_processes:
            by_rank = None
        if by_rank is None and process_index != 0:  # saved by another number of processes
            generator.manual_seed(self.cfg.seed + process_index + 1_000_003 * self.resumed_from.step)
            return self.resumed_from
        rng = by_rank[process_index] if by_rank is not None else self._rng
        if not restore_rng(rng, generator):
            emit(
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

    def wants_state(self, ends_run: bool) -> bool:
        """save_state: with every save; save_state_on_train_end: at the end and on Stop."""
        return self.cfg.save_state or (self.cfg.save_state_on_train_end and ends_run)

    def write(
        self,
        lora_path: Path,
        training: TrainingObjects,
        *,
        final: bool,
        rng_by_rank: list | None,
        emit: EventCallback,
    ) -> Path:
        """Write `<lora name>-state` for the current position (main process only);
        `rng_by_rank`: every process's generators (`gather_rng`) when there are several."""
        scaler = training.scaler
        blob = {
            "optimizer": training.optimizer.state_dict(),
            "scheduler": training.scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": capture_rng(self.generator),
            "rng_by_rank": rng_by_rank,
        }
        info = state_info(self.cfg, self.prepared, self.position, Path(lora_path).name, self.total_steps)
        folder = write_state(
            state_dir_for(lora_path), weights=training.network.state_dict(), training=blob, info=info
        )
        p = self.position
        emit(
            Event(
                "saved",
                {"path": str(folder), "epoch": p.epoch, "step": p.step, "final": final, "state": True},
            )
        )
        return folder
