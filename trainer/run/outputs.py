"""What a run shows while it trains, besides its LoRA files (trainer.run.save_point):
preview samples and TensorBoard logs. The loop calls these hooks:

    outputs.before_training()                 # sample_at_first
    outputs.after_step(step, loss, avg, lrs)  # TB scalars, step samples
    outputs.on_report()                       # flush TensorBoard while the GPU is read anyway
    outputs.after_epoch(epoch, step, avg)     # TB epoch loss, epoch samples
    outputs.close()                           # flush TensorBoard

Only the main process samples and logs, but every process walks the same code path: a
sample is drawn with a schedule-free optimizer's averaged weights
(`trainer.optim.optimizers.averaged_weights`), which every process swaps in and out alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from trainer.config import TrainingConfig, parse_resolution
from trainer.events import Event, EventCallback
from trainer.run.data import previews_wanted
from trainer.sampling.prompts import read_sample_prompts, sampling_due


class RunOutputs:
    """The per-step and per-epoch outputs of one run (see module docstring)."""

    def __init__(
        self,
        cfg: TrainingConfig,
        models,
        network,
        *,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        is_main: bool,
        emit: EventCallback,
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ):
        self.cfg, self.emit, self.optimizer = cfg, emit, optimizer
        self.sampler = None
        self.sampling = previews_wanted(cfg)  # on every process
        if is_main and self.sampling:
            from trainer.sampling.preview import Sampler

            self.sampler = Sampler(
                models,
                network,
                read_sample_prompts(cfg.sample_prompts),
                sampler=cfg.sample_sampler,
                output_dir=cfg.output_dir,
                output_name=cfg.output_name,
                resolution=parse_resolution(cfg.max_resolution),
                seed=cfg.seed,
                clip_skip=cfg.clip_skip,
                max_token_length=cfg.max_token_length,
                device=device,
                emit=emit,
                autocast=autocast,
            )
        self.tb = None
        if is_main and cfg.logging_dir.strip():
            from trainer.run.tensorboard import TensorBoardLogger, group_tags

            self.tb = TensorBoardLogger(cfg.logging_dir, cfg.output_name)
            self.lr_tags = group_tags(optimizer.param_groups)
            emit(Event("log", {"message": f"TensorBoard logs: {self.tb.folder}"}))

    def _sample(self, **when) -> None:
        from trainer.optim.optimizers import averaged_weights

        with averaged_weights(self.optimizer):
            if self.sampler is not None:
                self.sampler.sample(**when)

    def before_training(self) -> None:
        if self.sampling and self.cfg.sample_at_first:
            self._sample(step=0)

    def after_step(self, step: int, loss: torch.Tensor, avg_loss: torch.Tensor, lrs: list[float]) -> None:
        if self.tb is not None:
            self.tb.log_step(step, loss, avg_loss, dict(zip(self.lr_tags, lrs, strict=False)))
        if self.sampling and sampling_due(
            step=step,
            every_n_steps=self.cfg.sample_every_n_steps,
            every_n_epochs=self.cfg.sample_every_n_epochs,
        ):
            self._sample(step=step)

    def on_report(self) -> None:
        """The loop has just read the loss off the device: a free moment to write logs."""
        if self.tb is not None:
            self.tb.flush()

    def after_epoch(self, epoch: int, step: int, avg_loss: float) -> None:
        if self.tb is not None:
            self.tb.log_epoch(epoch, avg_loss)
        if self.sampling and sampling_due(
            step=step,
            every_n_steps=self.cfg.sample_every_n_steps,
            every_n_epochs=self.cfg.sample_every_n_epochs,
            epoch_end=epoch,
        ):
            self._sample(step=step, epoch=epoch)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
