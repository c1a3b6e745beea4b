"""Rules between the optimizer, schedule, noise, loss and network settings (no torch).

Called by `check_config`; returns (errors, warnings) like it. Each message names what to
change, and where the Kohya GUI would crash or silently ignore a value, says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainer.config.checks_network import network_shape_checks  # block dims, LyCORIS options
from trainer.config.problems import Problem
from trainer.config.rules.blocks import BlockWeights
from trainer.config.rules.lycoris import ALGOS, TYPE_OPTIONS
from trainer.config.rules.optimizer_args import (
    SCHEDULE_FREE,
    adafactor_kwargs,
    optimizer_rules,
    parse_args_text,
)
from trainer.config.rules.schedules import scheduler_arg_problems

if TYPE_CHECKING:
    from trainer.config.model import TrainingConfig


def _optimizer(cfg: TrainingConfig) -> tuple[list[Problem], list[str]]:
    pairs, warnings = optimizer_rules(
        optimizer=cfg.optimizer,
        optimizer_args=cfg.optimizer_args,
        lr_scheduler=cfg.lr_scheduler,
        warmup_steps=cfg.lr_warmup_steps,
        lr_warmup=cfg.lr_warmup,
        learning_rates={
            "learning_rate": cfg.learning_rate,
            "unet_lr": cfg.unet_lr,
            "text_encoder_lr": cfg.text_encoder_lr,
        },
    )
    if cfg.optimizer == "Adafactor" and not pairs:
        relative = adafactor_kwargs(parse_args_text(cfg.optimizer_args))[0]["relative_step"]
        per_group = [
            k
            for k in (
                "loraplus_lr_ratio",
                "loraplus_unet_lr_ratio",
                "loraplus_text_encoder_lr_ratio",
                "down_lr_weight",
                "mid_lr_weight",
                "up_lr_weight",
            )
            if str(getattr(cfg, k)).strip() not in ("", "0", "0.0")
        ]
        if (cfg.unet_lr or cfg.learning_rate) != (cfg.text_encoder_lr or cfg.learning_rate):
            per_group.insert(0, "different unet_lr / text_encoder_lr")
        if relative and per_group:
            warnings.append(
                "Adafactor with relative_step=True picks one step size rule for every layer: "
                f"{', '.join(per_group)} have no effect (as in Kohya)"
            )
    return [Problem(k, m) for k, m in pairs], warnings


def _schedule(cfg: TrainingConfig) -> tuple[list[Problem], list[str]]:
    """lr_scheduler_args read as data and checked against the chosen schedule, key by key."""
    try:
        args = parse_args_text(cfg.lr_scheduler_args)
    except ValueError as exc:
        return [Problem("lr_scheduler_args", str(exc))], []
    if cfg.lr_scheduler_type.strip() and cfg.optimizer in SCHEDULE_FREE:
        return [], [
            (
                f"lr_scheduler_type is not used: {cfg.optimizer} follows no learning-rate "
                "schedule (as in sd-scripts)"
            )
        ]
    if cfg.lr_scheduler_type.strip():
        from trainer.config.rules.torch_schedulers import class_name, torch_scheduler_problems

        pairs = torch_scheduler_problems(cfg.lr_scheduler_type, args)
        warnings = []
        if not pairs:
            unused = [f"lr_scheduler '{cfg.lr_scheduler}'"] if cfg.lr_scheduler != "constant" else []
            if cfg.lr_warmup or cfg.lr_warmup_steps:
                unused.append("the LR warmup")
            if unused:
                warnings.append(
                    f"lr_scheduler_type {class_name(cfg.lr_scheduler_type)} decides the "
                    f"learning rate: {' and '.join(unused)} are not used (as in sd-scripts)"
                )
        return [Problem(k, m) for k, m in pairs], warnings
    problems = scheduler_arg_problems(cfg.lr_scheduler, args, learning_rate=cfg.learning_rate)
    return [Problem("lr_scheduler_args", p) for p in problems], []


def _noise_and_loss(cfg: TrainingConfig) -> tuple[list[Problem], list[str]]:
    errors: list[Problem] = []
    warnings: list[str] = []
    if cfg.min_timestep >= cfg.max_timestep:
        errors.append(
            Problem(
                "min_timestep",
                f"{cfg.min_timestep} must be below max_timestep "
                f"{cfg.max_timestep}: timesteps are drawn from [min_timestep, max_timestep)",
            )
        )
    original = cfg.noise_offset_type == "Original"
    if cfg.adaptive_noise_scale and original and not cfg.noise_offset > 0:
        errors.append(
            Problem(
                "adaptive_noise_scale",
                "adds to the noise offset, so it needs Noise offset "
                "> 0 with Noise offset type 'Original'; set those, or set it to 0",
            )
        )
    elif cfg.adaptive_noise_scale and not original:  # Kohya drops it for Multires too
        warnings.append(
            "adaptive_noise_scale has no effect with Noise offset type "
            f"'{cfg.noise_offset_type}' (it adds to the Original noise offset)"
        )
    if cfg.noise_offset_random_strength and not (original and cfg.noise_offset > 0):
        warnings.append(
            "noise_offset_random_strength has no effect without a noise offset "
            "(Noise offset type 'Original', Noise offset > 0)"
        )
    if cfg.ip_noise_gamma_random_strength and not cfg.ip_noise_gamma:
        warnings.append("ip_noise_gamma_random_strength has no effect while ip_noise_gamma is 0")
    if cfg.scale_v_pred_loss_like_noise_pred and not cfg.v_parameterization:
        warnings.append(
            "scale_v_pred_loss_like_noise_pred only acts on v-prediction models "
            "(v_parameterization); it is ignored for this model"
        )
    return errors, warnings


def _network(cfg: TrainingConfig) -> tuple[list[Problem], list[str]]:
    errors: list[Problem] = []
    warnings: list[str] = []
    lycoris = cfg.LoRA_type.startswith("LyCORIS/")
    block_set = any(getattr(cfg, k).strip() for k in ("down_lr_weight", "mid_lr_weight", "up_lr_weight"))
    if block_set and lycoris:
        errors.append(
            Problem(
                "down_lr_weight",
                "block-wise learning rates work with LoRA type Standard "
                "or Kohya LoCon (as in Kohya); clear them or change the LoRA type",
            )
        )
    elif block_set:
        arch = "sdxl" if cfg.sdxl else "sd1"
        for key in ("down_lr_weight", "mid_lr_weight", "up_lr_weight"):
            one = {
                k: (getattr(cfg, k) if k == key else "")
                for k in ("down_lr_weight", "mid_lr_weight", "up_lr_weight")
            }
            try:  # one at a time, so that each bad text is named
                BlockWeights.parse(
                    one["down_lr_weight"],
                    one["mid_lr_weight"],
                    one["up_lr_weight"],
                    cfg.block_lr_zero_threshold,
                    arch,
                )
            except ValueError as exc:
                errors.append(Problem(key, str(exc)))
    if cfg.dora_wd and cfg.LoRA_type == "LyCORIS/iA3":
        errors.append(Problem("dora_wd", "DoRA works with LyCORIS LoCon, LoHa and LoKr, not iA3"))
    if cfg.stop_text_encoder_training and cfg.network_train_unet_only:
        warnings.append("stop_text_encoder_training has no effect: the text encoder is not trained")
    return errors, warnings


def training_option_checks(cfg: TrainingConfig) -> tuple[list[Problem], list[str]]:
    """Every rule of this module: (errors, warnings)."""
    errors: list[Problem] = []
    warnings: list[str] = []

    for rule in (_optimizer, _schedule, _noise_and_loss, _network, network_shape_checks):
        e, w = rule(cfg)
        errors.extend(e)
        warnings.extend(w)
    if cfg.fp8_base and cfg.mixed_precision == "no":
        errors.append(
            Problem(
                "fp8_base",
                "needs mixed precision 'fp16' or 'bf16' (the fp8 weights are computed in that precision)",
            )
        )
    e, w = _fp8_with_lycoris(cfg)
    return errors + e, warnings + w


def fp8_base_works_with(lora_type: str) -> bool:
    """Whether fp8_base can train this LoRA type: ours, or a LyCORIS type with a bypass mode."""
    return lora_type not in ALGOS or "bypass_mode" in TYPE_OPTIONS[lora_type]


def _fp8_with_lycoris(cfg: TrainingConfig) -> tuple[list[Problem], list[str]]:
    """LyCORIS multiplies its change into the weight in the weight's dtype, which float8
    cannot do; in bypass mode it adds its change to the layer's output instead."""
    if not (cfg.fp8_base and cfg.LoRA_type in ALGOS):
        return [], []
    if not fp8_base_works_with(cfg.LoRA_type):
        bypassing = sorted(t for t, options in TYPE_OPTIONS.items() if "bypass_mode" in options)
        return [
            Problem(
                "fp8_base",
                f"does not work with {cfg.LoRA_type}: it computes its change in the base weight's "
                f"float8 type, which PyTorch cannot do. Turn fp8_base off, or use Standard, Kohya LoCon "
                f"or {', '.join(bypassing)}",
            )
        ], []
    if cfg.bypass_mode:
        return [], []
    return [], [
        f"fp8_base with {cfg.LoRA_type}: trained in LyCORIS' bypass mode (its change is added to "
        "the fp8 layer's output); the saved file is the same"
    ]
