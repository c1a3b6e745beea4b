"""One save of a run, start to end: the only place a run writes its LoRA files and states.

The run decides when (trainer.plan.saves.SaveSchedule: epoch and step saves, the final
file, Stop's) and calls `save_point`, which does the how, in this order:

    1. check the loss        no save after a NaN/inf loss: a diverged LoRA never
                             replaces a good file (LossGuard)
    2. averaged weights      a schedule-free optimizer's average is what is saved
    3. the LoRA              <name>.safetensors, Kohya keys and metadata (LoRASaver)
    4. the training state    <name>-state with save_state (save_state_on_train_end:
                             with the final file and Stop's)
    5. prune                 the older files of the same series, now that this one is on disk

Every process calls it at the same point (the averaged weights and the gathered random
generators need all of them); only the main process writes and prunes. What a save reads
is handed over once, as `SaveParts`: none of it holds the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainer.config import TrainingConfig
from trainer.events import Event, EventCallback
from trainer.plan.saves import SavePoint, prune_older
from trainer.run.guards import LossGuard
from trainer.run.rng_state import gather_rng
from trainer.run.saving import LoRASaver
from trainer.run.state_keeper import StateKeeper, TrainingObjects


@dataclass(frozen=True)
class SaveParts:
    """What every save of one run reads, built once after setup."""

    cfg: TrainingConfig
    guard: LossGuard  # the losses so far
    training: TrainingObjects  # network, optimizer, LR schedule, grad scaler
    lora: LoRASaver  # writes the .safetensors
    keeper: StateKeeper  # the position and generator a state records
    num_processes: int
    is_main: bool
    emit: EventCallback


def save_point(parts: SaveParts, point: SavePoint) -> Path:
    """Write `point`'s LoRA (and training state), then prune; returns the LoRA's path.

    Raises TrainingError (a non-finite loss: nothing is written) or SaveError (the disk:
    the file or state of that name stays as it was, and nothing is pruned)."""
    from trainer.optim.optimizers import averaged_weights

    parts.guard.check()  # 1. waits for the GPU: the losses since the last report
    with averaged_weights(parts.training.optimizer):  # 2. on every process, so they stay alike
        path = parts.lora.save(point.name, point.epoch, point.step, final=point.final)  # 3.
        if parts.keeper.wants_state(point.ends_run):  # 4. the same answer on every process
            rngs = gather_rng(parts.keeper.generator, parts.num_processes)  # all processes at once
            if parts.is_main:
                parts.keeper.write(path, parts.training, final=point.final, rng_by_rank=rngs, emit=parts.emit)
    if parts.is_main:  # 5.
        for note in prune_older(parts.cfg, point):
            parts.emit(Event("log", {"message": note}))
    return path
