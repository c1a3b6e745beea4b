"""The setup phase of a run (a base of trainer.run.train.Run): accelerator, models, LoRA,
optimizer and LR schedule, before the data phase (trainer.run.data.RunData) and the loop.

Features and the settings behind them:
- mixed precision (`mixed_precision`): frozen weights in fp16/bf16 on a GPU, LoRA weights
  in fp32 (`full_fp16` / `full_bf16`: in that dtype, trainer.run.options).
- models (`pretrained_model_name_or_path`, `v2`, `sdxl`, `vae`): `trainer.models`;
  attention (`xformers`, `mem_eff_attn`, `fp8_base`), `gradient_checkpointing`.
- the network (`LoRA_type`, `network_dim`, ..., `network_weights` to continue from):
  `trainer.network.build`; which parts learn (`network_train_unet_only`,
  `network_train_text_encoder_only`).
- optimizers and schedulers by Kohya name (`optimizer`, `lr_scheduler`, per-part and
  block-wise learning rates, LoRA+): `trainer.optim.optimizers`.
- the opt-in speed options (`trainer.run.speed`).
"""

from __future__ import annotations

import time

import torch

from trainer.config.rules.schedules import warmup_steps_for
from trainer.events import Event
from trainer.run.accelerator import make_accelerator
from trainer.run.data import RunData
from trainer.run.options import StepHooks, allow_fp16_gradients, apply_attention_and_fp8, lora_dtype
from trainer.run.speed import apply_speed_options


class RunSetup(RunData):
    """Builds what a training step needs; `prepare` runs the setup in order."""

    def prepare(self, models=None) -> None:
        """Everything a training step needs: accelerator, models, LoRA, data and caches,
        optimizer. `models`: an already loaded SDModels to use instead of loading the
        configured model (scripts/bench.py steps a Run built this way)."""
        from accelerate.utils import set_seed

        cfg = self.cfg
        torch.set_num_threads(cfg.num_cpu_threads_per_process)
        # a fresh accelerate state each run; cpu=True without CUDA, so that several CPU
        # processes still form a (gloo) group
        self.acc = make_accelerator(cfg)
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
        self.owns_models = models is None  # only then may the run free parts it no longer needs
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
        optimizer = make_optimizer(
            cfg.optimizer, groups, cfg.learning_rate, cfg.optimizer_args, self.device, full_fp16=cfg.full_fp16
        )
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
