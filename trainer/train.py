"""The training run, read top to bottom: setup -> models -> network -> data -> loop -> save.

Features and the settings behind them:
- mixed precision (`mixed_precision`): autocast, LoRA weights in fp32, fp16 grad scaling.
- latent cache (`cache_latents`): each image is encoded once, not once per repeat.
- text cache: when the text encoder is frozen and captions never change, each caption
  is encoded once.
- buckets, repeats, reg images (`prior_loss_weight`), captions: `trainer.data`.
- noise offset / multires / min-SNR: `trainer.noise`; LR schedules: `trainer.schedule`.
- saves (`save_every_n_epochs`), Stop (a threading.Event): `<name>-stopped-<step>`.
- several processes (`accelerate launch`): each rank takes every world-th batch; the
  gradients are averaged; only the main process writes files and reports.
"""
from __future__ import annotations

import math
import os
import random
import threading
import time
import traceback
from pathlib import Path

import torch

from .config import ConfigError, TrainingConfig
from .data.captions import CaptionOptions
from .data.dataset import BucketBatcher, TrainDataset, collate
from .data.folders import DatasetError
from .events import Event, EventCallback
from .models import ModelLoadError
from .noise import min_snr_weights, per_sample_mse, sample_noise
from .plan import Plan, build_plan, prepare_data
from .preflight import run_preflight
from .run_io import LoRASaver, write_crash_log
from .schedule import lr_factor, warmup_steps_for
from .text import TextConditioner


class TrainingError(RuntimeError):
    """A failure during training with a message for a person (NaN loss, ...)."""


def train_with_events(cfg: TrainingConfig, on_event: EventCallback,
                      stop: threading.Event | None = None) -> int:
    """Plan, check, train. Returns 0 done or stopped, 1 training failure, 2 bad input."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    is_main = int(os.environ.get("RANK", "0")) == 0
    emit = on_event if is_main else (lambda event: None)

    def fail(code: int, message: str, hint: str = "", log_file: str = "") -> int:
        emit(Event("error", {"message": message, "hint": hint, "log_file": log_file}))
        return code

    try:
        prepared = prepare_data(cfg)
        plan = build_plan(cfg, prepared, num_processes=world)
    except DatasetError as exc:
        return fail(2, str(exc))
    problems, warnings = run_preflight(cfg)
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
        hint = _hint_for(exc)
        return fail(1, f"Training failed: {type(exc).__name__}: {exc}", hint, str(log or ""))


def _hint_for(exc: Exception) -> str:
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return ("The GPU ran out of memory. Lower train_batch_size or max_resolution, turn on "
                "gradient_checkpointing and cache_latents, or choose AdamW8bit.")
    return "The full traceback is in the log file."


class Run:
    """One training run; `execute` runs the phases in order."""

    def __init__(self, cfg: TrainingConfig, plan: Plan, prepared, emit: EventCallback,
                 stop: threading.Event):
        self.cfg, self.plan, self.prepared, self.emit, self.stop = cfg, plan, prepared, emit, stop

    # ---- setup ------------------------------------------------------------------------
    def execute(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        cfg = self.cfg
        torch.set_num_threads(cfg.num_cpu_threads_per_process)
        # cpu=True without CUDA, so that several CPU processes still form a (gloo) group
        self.acc = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
        self.device = self.acc.device
        set_seed(cfg.seed)
        self.emit(Event("started", {"output_dir": cfg.output_dir, "output_name": cfg.output_name,
                                    "device": str(self.device),
                                    "processes": self.acc.num_processes}))
        self.started_at = time.time()
        self._load_models()
        self._make_network()
        self._make_data()
        self._make_optimizer()
        self.saver = LoRASaver(cfg, self.plan, self.models, self.network, self.dataset,
                               self.started_at, self.acc.is_main_process, self.emit,
                               lr_warmup_steps=self.warmup)
        self._loop()

    def _load_models(self) -> None:
        from .models import load_models

        cfg = self.cfg
        on_gpu = self.device.type == "cuda"
        # Frozen weights in half precision on a GPU: half the memory, same speed under autocast.
        self.weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
            cfg.mixed_precision, torch.float32) if on_gpu else torch.float32
        self.models = m = load_models(
            cfg.pretrained_model_name_or_path, v2=cfg.v2, v_parameterization=cfg.v_parameterization,
            sdxl=cfg.sdxl, dtype=self.weight_dtype, vae_path=cfg.vae or None)
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
        self.noise_scheduler = m.noise_scheduler
        self.alphas_cumprod = m.noise_scheduler.alphas_cumprod.to(self.device)

    def _make_network(self) -> None:
        from .network import LoRANetwork

        cfg, m = self.cfg, self.models
        self.train_unet = not cfg.network_train_text_encoder_only
        self.train_te = not cfg.network_train_unet_only
        self.network = LoRANetwork(
            m.unet, m.text_encoders, arch=m.arch, rank=cfg.network_dim, alpha=cfg.network_alpha,
            conv_rank=cfg.conv_dim if cfg.LoRA_type == "Kohya LoCon" else 0,
            conv_alpha=cfg.conv_alpha, dropout=cfg.network_dropout,
            rank_dropout=cfg.rank_dropout, module_dropout=cfg.module_dropout,
            train_unet=self.train_unet, train_text_encoder=self.train_te)
        self.network.apply_to()
        if cfg.network_weights:
            self.network.load_kohya_weights(cfg.network_weights)
        self.network.to(self.device)
        if self.train_te and cfg.gradient_checkpointing:
            for te in m.text_encoders:
                te.gradient_checkpointing_enable()

    def _make_data(self) -> None:
        cfg, p = self.cfg, self.prepared
        self.dataset = TrainDataset(
            p.scan, p.reg_scan, p.choices, p.reg_choices, flip_aug=cfg.flip_aug,
            random_crop=cfg.random_crop, captions=CaptionOptions.from_config(cfg), seed=cfg.seed,
            on_warning=lambda msg: self.emit(Event("warning", {"message": msg})))
        self.batcher = BucketBatcher(self.dataset.bucket_entries(), cfg.train_batch_size, cfg.seed)
        self.text = TextConditioner(self.models.tokenizers, self.models.text_encoders,
                                    arch=self.models.arch, clip_skip=cfg.clip_skip,
                                    max_token_length=cfg.max_token_length)
        self.latent_cache = self._cache_latents() if cfg.cache_latents and not cfg.random_crop else None
        captions_fixed = not (cfg.shuffle_caption or cfg.caption_dropout_rate > 0
                              or cfg.caption_dropout_every_n_epochs > 0 or cfg.caption_tag_dropout_rate > 0)
        self.text_cache = self._cache_text() if captions_fixed and not self.train_te else None
        if self.text_cache is not None and not self.train_te:
            for te in self.models.text_encoders:
                te.to("cpu")  # no longer needed on the GPU
        if self.latent_cache is not None:
            self.models.vae.to("cpu")
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @torch.no_grad()
    def _encode_images(self, images: torch.Tensor) -> torch.Tensor:
        vae = self.models.vae
        dist = vae.encode(images.to(self.device, dtype=vae.dtype)).latent_dist
        return dist.sample().float() * self.models.latent_scale

    def _cache_latents(self) -> dict[tuple[int, bool], tuple[torch.Tensor, torch.Tensor]]:
        """(image index, flipped) -> (latent, SDXL size conditioning); once per unique image."""
        cache: dict = {}
        flips = (False, True) if self.cfg.flip_aug else (False,)
        total = len(self.dataset.images) * len(flips)
        self.emit(Event("log", {"message": f"Caching latents of {total} image(s)..."}))
        for index in range(len(self.dataset.images)):
            for flip in flips:
                sample = self.dataset.load_unique(index, flip)
                if sample is None:
                    continue
                latent = self._encode_images(sample["image"][None])[0]
                cache[(index, flip)] = (latent, self._time_ids_of(sample))
        return cache

    @torch.no_grad()
    def _cache_text(self) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        opts = CaptionOptions.from_config(self.cfg)
        rng = random.Random(0)  # unused: captions without randomness are fixed strings
        captions = sorted({opts.apply(item.caption, epoch=1, rng=rng) for item, _ in self.dataset.images})
        cache = {}
        for i in range(0, len(captions), 16):
            chunk = captions[i:i + 16]
            hidden, pooled = self.text.encode(chunk)
            for j, caption in enumerate(chunk):
                cache[caption] = (hidden[j].to(self.device),
                                  None if pooled is None else pooled[j].to(self.device))
        return cache

    @staticmethod
    def _time_ids_of(sample: dict) -> torch.Tensor:
        """SDXL size conditioning: original (h, w), crop top-left, target (h, w)."""
        return torch.tensor([*sample["original_size"], *sample["crop_top_left"],
                             *sample["target_size"]], dtype=torch.float32)

    def _make_optimizer(self) -> None:
        from .optim import make_optimizer

        cfg = self.cfg
        unet_lr = cfg.unet_lr or cfg.learning_rate
        te_lr = cfg.text_encoder_lr or cfg.learning_rate
        groups = self.network.param_groups(unet_lr if self.train_unet else 0.0,
                                           te_lr if self.train_te else 0.0)
        self.params = [p for g in groups for p in g["params"]]
        optimizer = make_optimizer(cfg.optimizer, groups, cfg.learning_rate, cfg.optimizer_args,
                                   self.device)
        total = self.plan.total_steps
        self.warmup = warmup_steps_for(total, cfg.lr_warmup, cfg.lr_warmup_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(
            s, name=cfg.lr_scheduler, total_steps=total, warmup_steps=self.warmup,
            num_cycles=cfg.lr_scheduler_num_cycles, power=cfg.lr_scheduler_power))
        self.optimizer = self.acc.prepare(optimizer)  # handles the fp16 grad scaler

    # ---- the loop -----------------------------------------------------------------------
    def _conditioning(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.text_cache is not None:
            hidden = torch.stack([self.text_cache[c][0] for c in captions])
            pooled = self.text_cache[captions[0]][1]
            if pooled is not None:
                pooled = torch.stack([self.text_cache[c][1] for c in captions])
            return hidden, pooled
        with torch.set_grad_enabled(self.train_te), self.acc.autocast():
            return self.text.encode(captions)

    def _latents(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if self.latent_cache is not None:
            pairs = [self.latent_cache[(i, f)] for i, f in zip(batch["image_indices"], batch["flipped"])]
            latents = torch.stack([p[0] for p in pairs])
            time_ids = torch.stack([p[1] for p in pairs])
        else:
            latents = self._encode_images(batch["images"])
            time_ids = torch.cat([batch["original_sizes"], batch["crop_top_lefts"],
                                  batch["target_sizes"]], dim=1).float()
        return latents.to(self.device), time_ids.to(self.device)

    def _step_loss(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        """The denoising loss of one batch (weighted per sample)."""
        cfg = self.cfg
        latents, time_ids = self._latents(batch)
        noise = sample_noise(latents, generator=generator, noise_offset=cfg.noise_offset
                             if cfg.noise_offset_type == "Original" else 0.0,
                             multires_iterations=cfg.multires_noise_iterations
                             if cfg.noise_offset_type == "Multires" else 0,
                             multires_discount=cfg.multires_noise_discount)
        b = latents.shape[0]
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (b,),
                                  device=self.device, generator=generator)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        hidden, pooled = self._conditioning(batch["captions"])
        extra = {}
        if self.models.arch == "sdxl":
            extra["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
        with self.acc.autocast():
            pred = self.models.unet(noisy.to(self.weight_dtype), timesteps, hidden.to(self.weight_dtype),
                                    **extra).sample
        if self.models.v_parameterization:
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        loss = per_sample_mse(pred, target)
        weights = torch.where(batch["is_reg"].to(self.device), cfg.prior_loss_weight, 1.0)
        if cfg.min_snr_gamma > 0:
            weights = weights * min_snr_weights(timesteps, self.alphas_cumprod, cfg.min_snr_gamma,
                                                self.models.v_parameterization)
        return (loss * weights).mean()

    def _sync_gradients(self) -> None:
        """Average the LoRA gradients over processes (every rank holds the same LoRA)."""
        if self.acc.num_processes > 1:
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                torch.distributed.all_reduce(p.grad)
                p.grad /= self.acc.num_processes

    def _loop(self) -> None:
        cfg, plan = self.cfg, self.plan
        accum = cfg.gradient_accumulation_steps
        generator = torch.Generator(device=self.device).manual_seed(cfg.seed + self.acc.process_index)
        total, step, last_emit = plan.total_steps, 0, 0.0
        t0 = time.time()
        self.network.train()
        for epoch in range(1, plan.epochs + 1):
            batches = self.batcher.epoch_batches(epoch)[self.acc.process_index::self.acc.num_processes]
            epoch_loss = torch.zeros((), device=self.device)
            epoch_batches = 0
            for bi, indices in enumerate(batches):
                batch = collate([self.dataset.sample(i, epoch, with_image=self.latent_cache is None)
                                 for i in indices])
                if batch is None:
                    continue
                # forward and backward; the loss is divided so accumulated gradients average
                loss = self._step_loss(batch, generator)
                self.acc.backward(loss / accum)
                epoch_loss += loss.detach()
                epoch_batches += 1
                if (bi + 1) % accum and bi + 1 != len(batches):
                    continue
                # clip, step the optimizer and the learning rate
                self._sync_gradients()
                if cfg.max_grad_norm > 0:
                    self.acc.clip_grad_norm_(self.params, cfg.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                step += 1
                # report about twice a second (reading the loss waits for the GPU)
                now = time.time()
                if now - last_emit > 0.5 or step == total or step == 1:
                    last_emit = now
                    self._report(step, total, epoch, loss, epoch_loss / epoch_batches, t0)
                if self.stop.is_set():
                    path = self.saver.save(f"{cfg.output_name}-stopped-{step}", epoch, step)
                    self.emit(Event("stopped", {"path": str(path), "step": step,
                                                "reason": "stopped by the user"}))
                    return
                if step >= total:
                    break
            avg = float(epoch_loss / max(1, epoch_batches))
            self.emit(Event("epoch", {"epoch": epoch, "epochs": plan.epochs, "avg_loss": avg}))
            if step >= total:
                break
            if epoch % cfg.save_every_n_epochs == 0 and epoch < plan.epochs:
                self.saver.save(f"{cfg.output_name}-{epoch:06d}", epoch, step)
        path = self.saver.save(cfg.output_name, plan.epochs, step, final=True)
        self.emit(Event("finished", {"path": str(path), "steps": step,
                                     "seconds": round(time.time() - self.started_at, 2)}))

    def _report(self, step: int, total: int, epoch: int, loss: torch.Tensor,
                avg: torch.Tensor, t0: float) -> None:
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingError(
                f"The loss became {value} at step {step}. Nothing was saved from this point. "
                "Usual causes: a learning rate too high, or fp16 with SDXL (use bf16).")
        elapsed = time.time() - t0
        rate = step / elapsed if elapsed > 0 else 0.0
        self.emit(Event("step", {
            "step": step, "total_steps": total, "epoch": epoch, "epochs": self.plan.epochs,
            "loss": value, "avg_loss": float(avg), "lr": self.scheduler.get_last_lr()[0],
            "it_per_s": round(rate, 3), "eta_s": round((total - step) / rate, 1) if rate else None}))


def output_path(cfg: TrainingConfig, name: str) -> Path:
    return Path(cfg.output_dir) / f"{name}.safetensors"
