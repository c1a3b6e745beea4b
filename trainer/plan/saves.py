"""The LoRA files a run writes: when, under which name, and pruning the older ones.

Names as sd-scripts writes them: `<name>-<epoch:06d>.safetensors` after every
`save_every_n_epochs`-th epoch, `<name>-step<step:08d>.safetensors` every
`save_every_n_steps` steps; neither at the very end, where the final `<name>.safetensors`
is written; `<name>-stopped-<step>.safetensors` on Stop. `SaveSchedule` answers when (a
`SavePoint`, or None); the run writes it (trainer.run.save_point) and then calls
`prune_older`. Pruning, also as sd-scripts: `save_last_n_epochs` keeps the newest N epoch
files; `save_last_n_steps` keeps the step files written in the last N steps. A file is
deleted only after the newer one is safely on disk, and the final file is never touched.
The `<file>-state` folders (save_state) are pruned the same way, keeping
`save_last_n_epochs_state` / `save_last_n_steps_state` where set (sd-scripts' override),
else the files' numbers; only a folder that holds a training state (its state.json) is
ever removed.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from trainer.config import TrainingConfig

EXT = "safetensors"


def epoch_file_stem(output_name: str, epoch: int) -> str:
    return f"{output_name}-{epoch:06d}"


def step_file_stem(output_name: str, step: int) -> str:
    return f"{output_name}-step{step:08d}"


def step_saves(output_name: str, every: int, total_steps: int) -> list[str]:
    """The step files a run of `total_steps` writes (the plan lists them)."""
    if every <= 0:
        return []
    return [f"{step_file_stem(output_name, s)}.{EXT}" for s in range(every, total_steps, every)]


STATE_MARKER = "state.json"  # trainer.run.state.STATE_FILE; a folder without it is not ours


def _numbered(folder: Path, pattern: re.Pattern, states: bool = False) -> list[tuple[int, Path]]:
    """(number, path) of the files (or, with `states`, the training-state folders: only
    those holding a state.json) whose name matches `pattern`, sorted."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = pattern.fullmatch(path.name)
        ours = path.is_dir() and (path / STATE_MARKER).is_file() if states else path.is_file()
        if match and ours:
            found.append((int(match.group(1)), path))
    return sorted(found)


def prune_epoch_states(folder: str | Path, output_name: str, current_epoch: int, keep: int) -> list[Path]:
    """Remove all but the newest `keep` `<name>-<epoch>-state` folders up to `current_epoch`."""
    if keep <= 0:
        return []
    pattern = re.compile(re.escape(output_name) + r"-(\d{6})-state")
    states = [(n, p) for n, p in _numbered(Path(folder), pattern, states=True) if n <= current_epoch]
    doomed = [p for _, p in states[:-keep]]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def prune_step_states(folder: str | Path, output_name: str, current_step: int, window: int) -> list[Path]:
    """Remove the `<name>-step<step>-state` folders older than the last `window` steps."""
    if window <= 0:
        return []
    pattern = re.compile(re.escape(output_name) + r"-step(\d{8})-state")
    doomed = [p for n, p in _numbered(Path(folder), pattern, states=True) if current_step - window > n]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def prune_epoch_files(folder: str | Path, output_name: str, current_epoch: int, keep: int) -> list[Path]:
    """Delete all but the newest `keep` epoch files up to `current_epoch`; returns them.

    Files numbered after the current epoch (left by an earlier, longer run) are left alone.
    """
    if keep <= 0:
        return []
    pattern = re.compile(re.escape(output_name) + r"-(\d{6})\." + EXT)
    files = [(n, p) for n, p in _numbered(Path(folder), pattern) if n <= current_epoch]
    doomed = [p for _, p in files[:-keep]]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def prune_step_files(folder: str | Path, output_name: str, current_step: int, window: int) -> list[Path]:
    """Delete the step files older than the last `window` steps; returns them."""
    if window <= 0:
        return []
    pattern = re.compile(re.escape(output_name) + r"-step(\d{8})\." + EXT)
    doomed = [p for n, p in _numbered(Path(folder), pattern) if current_step - window > n]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


@dataclass(frozen=True)
class SavePoint:
    """One LoRA file to write: its name (without .safetensors), the epoch and step it holds,
    and its series: "epoch" or "step" (intermediate, pruned), "final" or "stopped"."""

    name: str
    epoch: int
    step: int
    series: Literal["epoch", "step", "final", "stopped"]

    @property
    def final(self) -> bool:
        return self.series == "final"

    @property
    def ends_run(self) -> bool:
        """The final file or Stop's: save_state_on_train_end writes the state with these."""
        return self.series in ("final", "stopped")


class SaveSchedule:
    """When a run writes a LoRA file, and its name (cfg: save_every_n_epochs,
    save_every_n_steps, output_name). Decides only; writes nothing."""

    def __init__(self, cfg: TrainingConfig, *, total_steps: int, epochs: int) -> None:
        self.cfg, self.total_steps, self.epochs = cfg, total_steps, epochs

    def after_step(self, step: int, epoch: int) -> SavePoint | None:
        """`<name>-step<step>` when due (never at the last step: the final file follows)."""
        every = self.cfg.save_every_n_steps
        if every <= 0 or step % every or step >= self.total_steps:
            return None
        return SavePoint(step_file_stem(self.cfg.output_name, step), epoch, step, "step")

    def after_epoch(self, epoch: int, step: int) -> SavePoint | None:
        """`<name>-<epoch>` when due (never after the last epoch, nor once the last step is
        trained: the final file follows)."""
        every = self.cfg.save_every_n_epochs
        if every <= 0 or epoch % every or epoch >= self.epochs or step >= self.total_steps:
            return None
        return SavePoint(epoch_file_stem(self.cfg.output_name, epoch), epoch, step, "epoch")

    def final(self, step: int) -> SavePoint:
        return SavePoint(self.cfg.output_name, self.epochs, step, "final")

    def stopped(self, epoch: int, step: int) -> SavePoint:
        return SavePoint(f"{self.cfg.output_name}-stopped-{step}", epoch, step, "stopped")


def prune_older(cfg: TrainingConfig, point: SavePoint) -> list[str]:
    """Once `point` is safely on disk: remove the older files and states of its series that
    the keep settings no longer keep. Returns a note per removal, for the log."""
    folder, name = Path(cfg.output_dir), cfg.output_name
    if point.series == "step":
        window = cfg.save_last_n_steps
        removed = prune_step_files(folder, name, point.step, window)
        removed += prune_step_states(folder, name, point.step, cfg.save_last_n_steps_state or window)
    elif point.series == "epoch":
        keep = cfg.save_last_n_epochs
        removed = prune_epoch_files(folder, name, point.epoch, keep)
        removed += prune_epoch_states(folder, name, point.epoch, cfg.save_last_n_epochs_state or keep)
    else:
        return []  # the final file and Stop's prune nothing
    return [
        f"removed the older intermediate {'training state' if p.name.endswith('-state') else 'file'} {p.name}"
        for p in removed
    ]
