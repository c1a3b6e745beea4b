"""Intermediate LoRA files: when to write them, their names, and pruning the old ones.

Names as sd-scripts writes them: `<name>-<epoch:06d>.safetensors` after every
`save_every_n_epochs`-th epoch, `<name>-step<step:08d>.safetensors` every
`save_every_n_steps` steps; neither at the very end, where the final `<name>.safetensors`
is written. Pruning, also as sd-scripts: `save_last_n_epochs` keeps the newest N epoch
files; `save_last_n_steps` keeps the step files written in the last N steps. A file is
deleted only after the newer one is safely on disk (the save raises otherwise, and then
nothing is pruned), and the final file is never touched. The `<file>-state` folders
(save_state) are pruned the same way, keeping `save_last_n_epochs_state` /
`save_last_n_steps_state` where set (sd-scripts' override), else the files' numbers;
only a folder that holds a training state (its state.json) is ever removed.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Protocol

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


def _setting(settings, key: str) -> int:
    return int(getattr(settings, key, 0) or 0)


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


class _Saver(Protocol):
    def save(self, name: str, epoch: int, step: int, final: bool = False) -> Path: ...


class IntermediateSaves:
    """Writes the per-epoch and per-step files of a run and prunes the older ones.

    settings: the config (save_every_n_epochs, save_every_n_steps, save_last_n_epochs,
    save_last_n_steps, output_dir, output_name). Only the main process prunes.
    """

    def __init__(
        self,
        settings,
        saver: _Saver,
        *,
        total_steps: int,
        epochs: int,
        is_main: bool,
        on_log=lambda message: None,
    ):
        self.s, self.saver, self.is_main, self.log = settings, saver, is_main, on_log
        self.total_steps, self.epochs = total_steps, epochs
        self.folder = Path(settings.output_dir)

    def after_step(self, step: int, epoch: int) -> Path | None:
        """Save `<name>-step<step>` when due (never at the last step), then prune."""
        every = int(getattr(self.s, "save_every_n_steps", 0) or 0)
        if every <= 0 or step % every or step >= self.total_steps:
            return None
        path = self.saver.save(step_file_stem(self.s.output_name, step), epoch, step)
        if self.is_main:
            window = _setting(self.s, "save_last_n_steps")
            self._report(prune_step_files(self.folder, self.s.output_name, step, window))
            self._report(
                prune_step_states(
                    self.folder,
                    self.s.output_name,
                    step,
                    _setting(self.s, "save_last_n_steps_state") or window,
                )
            )
        return path

    def after_epoch(self, epoch: int, step: int) -> Path | None:
        """Save `<name>-<epoch>` when due (never after the last epoch), then prune."""
        every = int(getattr(self.s, "save_every_n_epochs", 0) or 0)
        if every <= 0 or epoch % every or epoch >= self.epochs:
            return None
        path = self.saver.save(epoch_file_stem(self.s.output_name, epoch), epoch, step)
        if self.is_main:
            keep = _setting(self.s, "save_last_n_epochs")
            self._report(prune_epoch_files(self.folder, self.s.output_name, epoch, keep))
            self._report(
                prune_epoch_states(
                    self.folder,
                    self.s.output_name,
                    epoch,
                    _setting(self.s, "save_last_n_epochs_state") or keep,
                )
            )
        return path

    def _report(self, removed: list[Path]) -> None:
        for path in removed:
            kind = "training state" if path.name.endswith("-state") else "file"
            self.log(f"removed the older intermediate {kind} {path.name}")
