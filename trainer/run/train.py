"""The training run, read top to bottom: setup -> models -> network -> data -> loop -> save.

Features and the settings behind them:
- the setup phase (accelerator, mixed precision, models, LoRA, optimizer and LR
  schedule): `trainer.run.setup.RunSetup`; the data phase (dataset, loader, latent and
  text caches, masked loss, weighted captions): `trainer.run.data.RunData`. Run extends both.
- the step (`Run.step_loss`, `Run.optimizer_step`), public so that benchmarks and tests
  step a Run as its loop does: noise offset / multires / min-SNR: `trainer.run.noise`; loss
  types, ip noise: `trainer.run.options`; `max_grad_norm`; a schedule-free optimizer's
  averaged weights are what saves and samples read (`trainer.optim.optimizers`).
- saves (`save_every_n_epochs`, `save_every_n_steps`, pruning, `save_state`): the loop
  asks `trainer.plan.saves.SaveSchedule` when, and `trainer.run.save_point.save_point`
  writes (loss check, averaged weights, LoRA, state, pruning). Stop (a threading.Event):
  `<name>-stopped-<step>`. Resume (`resume`): `trainer.run.state_keeper`.
- samples (Samples tab), TensorBoard (`logging_dir`): `trainer.run.outputs`.
- several processes (`accelerate launch`): each rank takes every world-th batch; the
  gradients are averaged; only the main process writes files and reports.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from trainer.config import ConfigError, TrainingConfig
from trainer.config.secrets import redact_data, secret_values
from trainer.data.resolved import ResolvedDataset
from trainer.events import Event, EventCallback
from trainer.files import clean_stale_temps, restore_interrupted
from trainer.models import ModelLoadError
from trainer.plan.saves import SaveSchedule
from trainer.plan.training_plan import Plan
from trainer.run.checks import check_before_loading
from trainer.run.grad_sync import average_gradients
from trainer.run.guards import DataGuard, LossGuard, TrainingError, explain_failure
from trainer.run.noise import min_snr_weights, perturb_noise, sample_noise, sample_timesteps
from trainer.run.options import noise_kwargs, per_sample_training_loss
from trainer.run.output_lock import OutputLocked, output_lock
from trainer.run.outputs import RunOutputs
from trainer.run.save_point import SaveParts, save_point
from trainer.run.saving import LoRASaver, write_crash_log
from trainer.run.setup import RunSetup
from trainer.run.state_keeper import StateKeeper, TrainingObjects
from trainer.transfer import to_device

FitCheck = Callable[[TrainingConfig, Plan], "str | None"]


def train_with_events(cfg: TrainingConfig, on_event: EventCallback, stop=None, fit_check=None) -> int:
    """Plan, check, train. Returns 0 done or stopped, 1 training failure, 2 bad input.
    `fit_check(cfg, plan)`: a warning, said before any model loads, when the run will not
    fit this GPU (trainer.estimate.gpu_fit_warning, given by the CLI and trainer.api).
    When it returns, nothing of the run is left: the app trains one run after another in
    its own process, and the next Start needs the GPU memory back."""
    try:
        return _plan_check_train(cfg, on_event, stop, fit_check)
    finally:
        release_memory()


def release_memory() -> None:
    """Free what a finished run left: its objects (the run holds no reference cycles, a
    collection catches those of libraries) and the CUDA allocator's cached blocks."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _redacting(on_event: EventCallback, cfg: TrainingConfig) -> EventCallback:
    """`on_event` receiving every event with its text redacted: a token or API key that a
    message quotes (an error, a warning, a path) shows as ***."""
    values = secret_values(cfg)

    def emit(event: Event) -> None:
        on_event(Event(event.kind, redact_data(event.data, values), event.time))

    return emit


def _plan_check_train(cfg: TrainingConfig, on_event: EventCallback, stop, fit_check: FitCheck | None) -> int:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    is_main = int(os.environ.get("RANK", "0")) == 0
    emit = _redacting(on_event, cfg) if is_main else (lambda event: None)

    def fail(code: int, message: str, hint: str = "", log_file: str = "") -> int:
        emit(Event("error", {"message": message, "hint": hint, "log_file": log_file}))
        return code

    if is_main and cfg.resume.strip():  # a state a killed save left aside: back under its name
        restored = restore_interrupted(Path(cfg.resume.strip()).expanduser())
        if restored:
            emit(Event("log", {"message": restored}))
    # every check that needs no model, all problems at once (the dry run runs the same)
    checked = check_before_loading(cfg, num_processes=world, is_main=is_main)
    if checked.problems:
        return fail(2, checked.message())
    cfg, plan, prepared = checked.cfg, checked.plan, checked.data
    if fit_check is not None and is_main and (too_big := fit_check(cfg, plan)):
        checked.warnings.append(too_big)
    try:
        with output_lock(cfg, is_main):  # one run per output; released however the run ends
            emit(Event("plan", plan.to_json()))
            for w in [*plan.warnings, *checked.warnings]:
                emit(Event("warning", {"message": w}))
            Run(cfg, plan, prepared, emit, stop or threading.Event()).execute()
        return 0
    except OutputLocked as exc:
        return fail(2, f"Fix these settings first:\n- output_name: {exc}")
    except (ConfigError, ModelLoadError) as exc:
        return fail(2, str(exc))
    except TrainingError as exc:
        return fail(1, str(exc))
    except Exception as exc:  # noqa: BLE001 - the user gets a message, the log the traceback
        log = write_crash_log(cfg, traceback.format_exc())
        message, hint = explain_failure(cfg, exc)  # out of memory, disk full, ...: what to change
        return fail(1, message, hint, str(log or ""))


class Run(RunSetup):
    """One training run; `execute` runs the phases in order: setup (`prepare`,
    trainer.run.setup), the training state and saves, the loop, the final file.

    The training step is public, so that scripts/bench_worker.py and the tests step a
    prepared Run exactly as its loop does:

        loss = run.step_loss(batch, generator)   # forward: the loss of one batch
        run.acc.backward(loss)                   # (the loop divides by gradient_accumulation_steps)
        run.optimizer_step()                     # once per accumulated batch
    """

    def __init__(
        self,
        cfg: TrainingConfig,
        plan: Plan,
        prepared: ResolvedDataset,
        emit: EventCallback,
        stop: threading.Event,
    ) -> None:
        self.cfg, self.plan, self.prepared, self.emit, self.stop = cfg, plan, prepared, emit, stop

    def execute(self) -> None:
        self.prepare()
        cfg, plan, acc = self.cfg, self.plan, self.acc
        if acc.is_main_process and cfg.output_dir.strip():
            for note in clean_stale_temps(Path(cfg.output_dir)):  # what a killed run left
                self.emit(Event("log", {"message": note}))
        # the training state: resumed here (weights, optimizer, schedule), written with saves
        training = TrainingObjects(self.network, self.optimizer, self.scheduler, acc.scaler)
        self.keeper = StateKeeper(cfg, self.prepared, plan.total_steps)
        self.keeper.resume(training, self.emit)
        # the run decides when to save (SaveSchedule); every save reads these (save_point)
        self.guard = LossGuard(cfg, world=acc.num_processes)
        self.schedule = SaveSchedule(cfg, total_steps=plan.total_steps, epochs=plan.epochs)
        lora = LoRASaver(
            cfg,
            plan,
            self.models,
            self.network,
            self.dataset,
            self.started_at,
            acc.is_main_process,
            self.emit,
            lr_warmup_steps=self.warmup,
        )
        self.save_parts = SaveParts(
            cfg, self.guard, training, lora, self.keeper, acc.num_processes, acc.is_main_process, self.emit
        )
        self.outputs = RunOutputs(
            cfg,
            self.models,
            self.network,
            optimizer=self.optimizer,
            device=self.device,
            is_main=acc.is_main_process,
            emit=self.emit,
            autocast=acc.autocast,
        )
        try:
            self._loop()
        finally:
            self.outputs.close()

    # ---- the step ---------------------------------------------------------------------------
    def step_loss(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        """The denoising loss of one batch (weighted per sample), ready for backward.

        Noise, timesteps and the noisy latents are drawn from `generator`; the U-Net
        predicts under autocast; the loss type, masks, prior loss and min-SNR weights
        follow the settings (trainer.run.options, trainer.run.noise)."""
        cfg = self.cfg
        latents, time_ids = self._latents(batch)
        noise = sample_noise(latents, generator=generator, **noise_kwargs(cfg))
        b = latents.shape[0]
        timesteps = sample_timesteps(
            b, cfg.min_timestep, cfg.max_timestep, device=self.device, generator=generator
        )
        # ip_noise_gamma perturbs the input's noise only; the target stays `noise`
        noisy = self.noise_scheduler.add_noise(
            latents,
            perturb_noise(
                noise,
                cfg.ip_noise_gamma,
                random_strength=cfg.ip_noise_gamma_random_strength,
                generator=generator,
            ),
            timesteps,
        )
        hidden, pooled = self._conditioning(batch["captions"])
        extra = {}
        if self.models.arch == "sdxl":
            extra["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
        with self.acc.autocast():
            pred = self.models.unet(
                noisy.to(self.weight_dtype), timesteps, hidden.to(self.weight_dtype), **extra
            ).sample
        if self.models.v_parameterization:
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        loss = per_sample_training_loss(  # l2 / l1 / huber / smooth_l1
            cfg,
            pred,
            target,
            timesteps,
            self.alphas_cumprod,
            v_prediction=self.models.v_parameterization,
            num_train_timesteps=self.noise_scheduler.config.num_train_timesteps,
            mask=batch.get("masks"),
        )  # masked_loss: the pictures' transparency
        weights = torch.where(to_device(batch["is_reg"], self.device), cfg.prior_loss_weight, 1.0)
        if cfg.min_snr_gamma > 0:
            weights = weights * min_snr_weights(
                timesteps, self.alphas_cumprod, cfg.min_snr_gamma, self.models.v_parameterization
            )
        return (loss * weights).mean()

    def _sync_gradients(self) -> None:
        """Average the LoRA gradients over processes (every rank holds the same LoRA):
        bucketed, in fp32, unused parameters left alone (trainer.run.grad_sync)."""
        average_gradients(self.params, self.acc.num_processes)

    def optimizer_step(self) -> None:
        """After backward: average the gradients (several processes), clip them
        (`max_grad_norm`), step the optimizer and the LR schedule (not for a step the fp16
        grad scaler skipped), clear the gradients."""
        self._sync_gradients()
        if self.cfg.max_grad_norm > 0:
            self.acc.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        self.optimizer.step()
        if not getattr(self.optimizer, "step_was_skipped", False):
            # fp16: a step the grad scaler skipped (inf/NaN gradients) does not advance the LR
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    # ---- the loop -----------------------------------------------------------------------------
    def _stop_requested(self, agreed: bool) -> bool:
        """Stop (the GUI button, Ctrl-C, SIGTERM) after this step. With several processes the
        request can reach them a step apart, so they go by what they agreed on when the loss
        was checked (LossGuard.observe): all stop and save at the same step (one left behind
        would wait for the others forever). One process also sees a request that came in
        during the step."""
        if self.acc.num_processes == 1:
            return self.stop.is_set()
        if agreed:
            self.stop.set()
        return agreed

    def _loop(self) -> None:
        cfg, plan, keeper = self.cfg, self.plan, self.keeper
        accum = cfg.gradient_accumulation_steps
        generator = torch.Generator(device=self.device).manual_seed(cfg.seed + self.acc.process_index)
        # step 0, or a resumed state's position (its random generators restored)
        at = keeper.start(
            generator,
            process_index=self.acc.process_index,
            num_processes=self.acc.num_processes,
            emit=self.emit,
        )
        self.hooks.resumed_at(at.step)  # a text encoder whose training had stopped stays frozen
        total, step, last_emit = plan.total_steps, at.step, 0.0
        t0 = time.time()
        self.network.train()
        if at.step == 0:
            self.outputs.before_training()
        num_batches = self.loader.num_batches()
        data_guard = DataGuard(self.dataset, self.loader)  # most images unreadable: stop (exit 1)
        for epoch in range(at.epoch, plan.epochs + 1):
            epoch_loss = torch.zeros((), device=self.device)
            epoch_batches = pending = 0  # batches trained this epoch / since the last optimizer step
            data_guard.start_epoch(epoch)
            skip = at.batches_done if epoch == at.epoch else 0  # trained before a resumed state
            for bi, batch in enumerate(self.loader.epoch(epoch, skip)):
                if (epoch, bi) < (at.epoch, at.batches_done):
                    continue  # trained before the resumed state was saved
                data_guard.observe(bi, batch)  # images that could not be read are left out
                if batch is not None:
                    # forward and backward; the loss is divided so accumulated gradients average
                    loss = self.step_loss(batch, generator)
                    # NaN/inf stops the run (no GPU wait); several processes agree on Stop here
                    agreed_stop = self.guard.observe(loss, step + 1, self.stop.is_set())
                    self.acc.backward(loss / accum)
                    epoch_loss += loss.detach()
                    epoch_batches += 1
                    pending += 1
                if not pending:  # no data since the last step: no step, the batch is done
                    keeper.advance(epoch, bi + 1, step)
                    continue
                if (bi + 1) % accum and bi + 1 != num_batches:
                    continue
                pending = 0
                # clip, step the optimizer and the learning rate
                self.optimizer_step()
                step += 1
                self.hooks.after_step(step)  # scale_weight_norms, stop_text_encoder_training
                keeper.advance(epoch, bi + 1, step)
                # report about twice a second (reading the loss waits for the GPU)
                now = time.time()
                if now - last_emit > 0.5 or step == total or step == 1:
                    last_emit = now
                    self._report(step, total, epoch, loss, epoch_loss / epoch_batches, t0)
                    self.outputs.on_report()
                if self._stop_requested(agreed_stop):
                    path = save_point(self.save_parts, self.schedule.stopped(epoch, step))
                    self.emit(
                        Event("stopped", {"path": str(path), "step": step, "reason": "stopped by the user"})
                    )
                    return
                # a step save when due (then pruning); TensorBoard, step samples
                if point := self.schedule.after_step(step, epoch):
                    save_point(self.save_parts, point)
                self.outputs.after_step(
                    step, loss.detach(), epoch_loss / epoch_batches, self.scheduler.get_last_lr()
                )
                if step >= total:
                    break
            avg = float(epoch_loss / max(1, epoch_batches))
            self.emit(Event("epoch", {"epoch": epoch, "epochs": plan.epochs, "avg_loss": avg}))
            keeper.end_epoch(epoch, num_batches)  # a state saved from here on starts the next epoch
            # an epoch save when due (never at the end: the final file follows); epoch samples
            if point := self.schedule.after_epoch(epoch, step):
                save_point(self.save_parts, point)
            self.outputs.after_epoch(epoch, step, avg)
            if step >= total:
                break
        path = save_point(self.save_parts, self.schedule.final(step))
        self.emit(
            Event(
                "finished",
                {"path": str(path), "steps": step, "seconds": round(time.time() - self.started_at, 2)},
            )
        )

    def _report(
        self, step: int, total: int, epoch: int, loss: torch.Tensor, avg: torch.Tensor, t0: float
    ) -> None:
        self.guard.check()  # reading the loss waits for the GPU anyway
        value = float(loss.detach())
        elapsed = time.time() - t0
        rate = (step - self.keeper.resumed_from.step) / elapsed if elapsed > 0 else 0.0
        self.emit(
            Event(
                "step",
                {
                    "step": step,
                    "total_steps": total,
                    "epoch": epoch,
                    "epochs": self.plan.epochs,
                    "loss": value,
                    "avg_loss": float(avg),
                    "lr": self.scheduler.get_last_lr()[0],
                    "it_per_s": round(rate, 3),
                    "eta_s": round((total - step) / rate, 1) if rate else None,
                    **self.hooks.report(),
                },
            )
        )


def output_path(cfg: TrainingConfig, name: str) -> Path:
    return Path(cfg.output_dir) / f"{name}.safetensors"
