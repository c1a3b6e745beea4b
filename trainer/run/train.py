"""The training run, read top to bottom: setup -> models -> network -> data -> loop -> save.

Features and the settings behind them:
- mixed precision (`mixed_precision`): autocast, LoRA weights in fp32, fp16 grad scaling.
- the data phase (dataset, loader, latent and text caches, masked loss, weighted
  captions): `trainer.run.data.RunData`, which Run extends.
- buckets, repeats, reg images (`prior_loss_weight`), captions: `trainer.data`.
- noise offset / multires / min-SNR: `trainer.run.noise`; LR schedules: `trainer.config.rules.schedules`.
- optimizers and schedulers by Kohya name (`optimizer`, `lr_scheduler`): `trainer.optim.optimizers`
  (a schedule-free optimizer's averaged weights are what saves and samples read);
  LoRA type incl. LyCORIS, LoRA+, block-wise LR: `trainer.network.build`; loss types,
  ip noise, mem_eff_attn, fp8_base, full_fp16/bf16, max-norm, text-encoder stop:
  `trainer.run.options`.
- saves (`save_every_n_epochs`, `save_every_n_steps`, pruning), samples (Samples tab),
  TensorBoard (`logging_dir`): `trainer.run.outputs`. Stop (a threading.Event):
  `<name>-stopped-<step>`.
- several processes (`accelerate launch`): each rank takes every world-th batch; the
  gradients are averaged; only the main process writes files and reports.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from pathlib import Path

import torch

from trainer.config import ConfigError, TrainingConfig
from trainer.config.rules.schedules import warmup_steps_for
from trainer.data.folders import DatasetError
from trainer.data.resolved import resolve_dataset
from trainer.events import Event, EventCallback
from trainer.models import ModelLoadError
from trainer.plan.training_plan import Plan, plan_dataset
from trainer.run.data import RunData
from trainer.run.guards import LossGuard, TrainingError, explain_failure
from trainer.run.noise import min_snr_weights, perturb_noise, sample_noise, sample_timesteps
from trainer.run.options import (
    StepHooks,
    allow_fp16_gradients,
    apply_attention_and_fp8,
    lora_dtype,
    noise_kwargs,
    per_sample_training_loss,
)
from trainer.run.outputs import RunOutputs
from trainer.run.preflight import run_preflight
from trainer.run.saving import LoRASaver, write_crash_log
from trainer.run.speed import apply_speed_options
from trainer.run.state import StateKeeper, check_resume
from trainer.transfer import to_device


def train_with_events(
    cfg: TrainingConfig, on_event: EventCallback, stop: threading.Event | None = None
) -> int:
    """Plan, check, train. Returns 0 done or stopped, 1 training failure, 2 bad input."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    is_main = int(os.environ.get("RANK", "0")) == 0
    emit = on_event if is_main else (lambda event: None)

    def fail(code: int, message: str, hint: str = "", log_file: str = "") -> int:
        emit(Event("error", {"message": message, "hint": hint, "log_file": log_file}))
        return code

    try:
        prepared = resolve_dataset(cfg)  # once: a dataset TOML's batch size, resolution, ... applied
        cfg = prepared.cfg  # what the plan, preflight and the run read from here on
        plan = plan_dataset(prepared, num_processes=world)
    except DatasetError as exc:
        return fail(2, str(exc))
    problems, warnings = run_preflight(cfg)
    resume_problems, resume_notes = check_resume(cfg, prepared, plan.total_steps)
    problems = list(dict.fromkeys([*problems, *resume_problems]))  # preflight reads the folder too
    warnings = [*warnings, *resume_notes]
    if problems:
        return fail(2, "Fix these settings first:\n" + "\n".join(f"- {p}" for p in problems))
    emit(Event("plan", plan.to_json()))
    for w in [*plan.warnings, *warnings]:
        emit(Event("warning", {"message": w}))
    try:
        Run(cfg, plan, prepared, emit, stop or threading.Event()).execute()
        return 0
    except (ConfigError, ModelLoadError) as exc:
        return fail(2, str(exc))
    except TrainingError as exc:
        return fail(1, str(exc))
    except Exception as exc:  # noqa: BLE001 - the user gets a message, the log the traceback
        log = write_crash_log(cfg, traceback.format_exc())
        message, hint = explain_failure(cfg, exc)  # out of memory, disk full, ...: what to change
        return fail(1, message, hint, str(log or ""))


class Run(RunData):
    """One training run; `execute` runs the phases in order."""

    def __init__(self, cfg: TrainingConfig, plan: Plan, prepared, emit: EventCallback, stop: threading.Event):
        self.cfg, self.plan, self.prepared, self.emit, self.stop = cfg, plan, prepared, emit, stop

    # ---- setup ------------------------------------------------------------------------
    def execute(self) -> None:
        self.prepare()
        cfg = self.cfg
        self.saver = LoRASaver(
            cfg,
            self.plan,
            self.models,
            self.network,
            self.dataset,
            self.started_at,
            self.acc.is_main_process,
            self.emit,
            lr_warmup_steps=self.warmup,
        )
        # every save checks the loss first and writes the training state after; resume loads it
        self.guard = LossGuard(cfg, world=self.acc.num_processes)
        self.keeper = StateKeeper(self, self.guard)
        self.saver = self.keeper.guarded(self.saver)
        self.keeper.resume()
        self.outputs = RunOutputs(
            cfg,
            self.plan,
            self.models,
            self.network,
            self.saver,
            optimizer=self.optimizer,
            device=self.device,
            is_main=self.acc.is_main_process,
            emit=self.emit,
            autocast=self.acc.autocast,
        )
        try:
            self._loop()
        finally:
            self.outputs.close()

    def prepare(self, models=None) -> None:
        """Everything a training step needs: accelerator, models, LoRA, data and caches,
        optimizer. `models`: an already loaded SDModels to use instead of loading the
        configured model (scripts/bench.py steps a Run built this way)."""
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        cfg = self.cfg
        torch.set_num_threads(cfg.num_cpu_threads_per_process)
        # cpu=True without CUDA, so that several CPU processes still form a (gloo) group
        self.acc = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
        self.device = self.acc.device
        set_seed(cfg.seed)
        self.emit(
            Event(
                "started",
                {
                    "output_dir": cfg.output_dir,
                    "output_name": cfg.output_name,
                    "device": str(self.device),
                    "processes": self.acc.num_processes,
                },
            )
        )
        self.started_at = time.time()
        self._load_models(models)
        self._make_network()
        for note in apply_speed_options(cfg, self.models.unet, self.device):  # opt-in; off by default
            self.emit(Event("log", {"message": note}))
        self._make_data()
        self._make_optimizer()

    def _load_models(self, models=None) -> None:
        from trainer.models import load_models

        cfg = self.cfg
        on_gpu = self.device.type == "cuda"
        # Frozen weights in half precision on a GPU: half the memory, same speed under autocast.
        self.weight_dtype = (
            {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.mixed_precision, torch.float32)
            if on_gpu
            else torch.float32
        )
        self.models = m = models or load_models(
            cfg.pretrained_model_name_or_path,
            v2=cfg.v2,
            v_parameterization=cfg.v_parameterization,
            sdxl=cfg.sdxl,
            dtype=self.weight_dtype,
            vae_path=cfg.vae or None,
        )
        if m.arch == "sdxl" and self.weight_dtype == torch.float16:
            m.vae.to(dtype=torch.float32)  # the SDXL VAE overflows in fp16
        for module in (m.unet, m.vae, *m.text_encoders):
            module.to(self.device)
        if cfg.xformers == "xformers":
            m.unet.enable_xformers_memory_efficient_attention()
        elif cfg.xformers == "none":
            from diffusers.models.attention_processor import AttnProcessor

            m.unet.set_attn_processor(AttnProcessor())
        if cfg.gradient_checkpointing:
            m.unet.enable_gradient_checkpointing()
        apply_attention_and_fp8(cfg, m.unet)  # mem_eff_attn, fp8_base
        self.noise_scheduler = m.noise_scheduler
        self.alphas_cumprod = m.noise_scheduler.alphas_cumprod.to(self.device)

    def _make_network(self) -> None:
        from trainer.network.build import build_network

        cfg, m = self.cfg, self.models
        self.train_unet = not cfg.network_train_text_encoder_only
        self.train_te = not cfg.network_train_unet_only
        # Standard / Kohya LoCon: our LoRANetwork; LyCORIS/*: lycoris-lora's modules
        self.network = build_network(
            cfg,
            m.unet,
            m.text_encoders,
            arch=m.arch,
            train_unet=self.train_unet,
            train_text_encoder=self.train_te,
        )
        self.network.apply_to()
        if cfg.network_weights:
            self.network.load_kohya_weights(cfg.network_weights)
        self.network.to(self.device, dtype=lora_dtype(cfg))  # full_fp16 / full_bf16
        # Train mode where a LoRA learns: the LoRA dropouts act only then (the frozen
        # weights have no dropout or batch norm, so nothing else changes).
        if self.train_unet:
            m.unet.train()
        if self.train_te:
            for te in m.text_encoders:
                te.train()
        if self.train_te and cfg.gradient_checkpointing:
            for te in m.text_encoders:
                te.gradient_checkpointing_enable()

    def _make_optimizer(self) -> None:
        from trainer.network.build import network_param_groups
        from trainer.optim.optimizers import make_optimizer, make_scheduler

        cfg = self.cfg
        unet_lr = cfg.unet_lr or cfg.learning_rate
        te_lr = cfg.text_encoder_lr or cfg.learning_rate
        # per-part learning rates, LoRA+ ratios and block-wise weights
        groups = network_param_groups(
            cfg,
            self.network,
            arch=self.models.arch,
            unet_lr=unet_lr if self.train_unet else 0.0,
            text_encoder_lr=te_lr if self.train_te else 0.0,
        )
        self.params = [p for g in groups for p in g["params"]]
        optimizer = make_optimizer(cfg.optimizer, groups, cfg.learning_rate, cfg.optimizer_args, self.device)
        total = self.plan.total_steps
        self.warmup = warmup_steps_for(total, cfg.lr_warmup, cfg.lr_warmup_steps)
        self.scheduler = make_scheduler(
            optimizer,
            name=cfg.lr_scheduler,
            total_steps=total,
            warmup_steps=self.warmup,
            num_cycles=cfg.lr_scheduler_num_cycles,
            power=cfg.lr_scheduler_power,
            initial_lr=cfg.learning_rate,
            args_text=cfg.lr_scheduler_args,
            scheduler_type=cfg.lr_scheduler_type,
        )
        self.optimizer = self.acc.prepare(optimizer)  # handles the fp16 grad scaler
        if cfg.full_fp16:
            allow_fp16_gradients(self.acc)
        self.hooks = StepHooks(
            cfg, self.network, self.optimizer, total, self.device, self.emit, train_text_encoder=self.train_te
        )

    # ---- the loop -----------------------------------------------------------------------
    def _step_loss(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        """The denoising loss of one batch (weighted per sample)."""
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
        """Average the LoRA gradients over processes (every rank holds the same LoRA)."""
        if self.acc.num_processes > 1:
            for p in self.params:
                if not p.requires_grad:
                    continue  # a stopped text encoder: every rank froze it at the same step
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                torch.distributed.all_reduce(p.grad)
                p.grad /= self.acc.num_processes

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

    def _optimizer_step(self) -> None:
        """Average (several processes), clip, step the optimizer and the LR, clear the grads."""
        self._sync_gradients()
        if self.cfg.max_grad_norm > 0:
            self.acc.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _loop(self) -> None:
        cfg, plan = self.cfg, self.plan
        accum = cfg.gradient_accumulation_steps
        generator = torch.Generator(device=self.device).manual_seed(cfg.seed + self.acc.process_index)
        at = self.keeper.start(generator)  # step 0, or a resumed state's position (RNGs restored)
        self.hooks.resumed_at(at.step)  # a text encoder whose training had stopped stays frozen
        total, step, last_emit = plan.total_steps, at.step, 0.0
        t0 = time.time()
        self.network.train()
        if at.step == 0:
            self.outputs.before_training()
        num_batches = self.loader.num_batches()
        for epoch in range(at.epoch, plan.epochs + 1):
            epoch_loss = torch.zeros((), device=self.device)
            epoch_batches = 0
            skip = at.batches_done if epoch == at.epoch else 0  # trained before a resumed state
            for bi, batch in enumerate(self.loader.epoch(epoch, skip)):
                if batch is None or (epoch, bi) < (at.epoch, at.batches_done):
                    continue  # every image failed, or trained before the resumed state was saved
                # forward and backward; the loss is divided so accumulated gradients average
                loss = self._step_loss(batch, generator)
                # NaN/inf stops the run (no GPU wait); several processes agree on Stop here
                agreed_stop = self.guard.observe(loss, step + 1, self.stop.is_set())
                self.acc.backward(loss / accum)
                epoch_loss += loss.detach()
                epoch_batches += 1
                if (bi + 1) % accum and bi + 1 != num_batches:
                    continue
                # clip, step the optimizer and the learning rate
                self._optimizer_step()
                step += 1
                self.hooks.after_step(step)  # scale_weight_norms, stop_text_encoder_training
                self.keeper.advance(epoch, bi + 1, step)
                # report about twice a second (reading the loss waits for the GPU)
                now = time.time()
                if now - last_emit > 0.5 or step == total or step == 1:
                    last_emit = now
                    self._report(step, total, epoch, loss, epoch_loss / epoch_batches, t0)
                    self.outputs.on_report()
                if self._stop_requested(agreed_stop):
                    path = self.saver.save(f"{cfg.output_name}-stopped-{step}", epoch, step)
                    self.emit(
                        Event("stopped", {"path": str(path), "step": step, "reason": "stopped by the user"})
                    )
                    return
                # TensorBoard, step saves (and pruning), step samples
                self.outputs.after_step(
                    step, epoch, loss.detach(), epoch_loss / epoch_batches, self.scheduler.get_last_lr()
                )
                if step >= total:
                    break
            avg = float(epoch_loss / max(1, epoch_batches))
            self.emit(Event("epoch", {"epoch": epoch, "epochs": plan.epochs, "avg_loss": avg}))
            self.keeper.end_epoch(epoch, num_batches)  # a state saved from here on starts the next epoch
            # epoch saves (never after the last epoch: the final file follows), epoch samples
            self.outputs.after_epoch(epoch, step, avg, last=step >= total or epoch == plan.epochs)
            if step >= total:
                break
        path = self.saver.save(cfg.output_name, plan.epochs, step, final=True)
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
