"""The loop's optional behaviours, kept out of train.py so the loop stays readable.

Features and the settings behind them:
- `mem_eff_attn`: PyTorch's memory-efficient SDPA kernel (tiled attention: never one big
  attention matrix, and backward keeps only each tile's statistics) on CUDA; elsewhere
  the default SDPA. With xformers chosen, xformers already works so and stays.
- `fp8_base`: the frozen U-Net weights stored in float8_e4m3fn; autocast computes in
  fp16/bf16 (CUDA only; preflight refuses it elsewhere).
- `full_fp16` / `full_bf16`: the LoRA weights themselves in that dtype (less memory);
  with fp16 the grad scaler is allowed to unscale fp16 gradients.
- noise and loss (`trainer.run.noise`, `trainer.run.loss`): the settings as keyword arguments;
  the loss weights `v_pred_like_loss` and `debiased_estimation_loss` per sample.
- after each optimizer step (`StepHooks`): `scale_weight_norms` (max-norm regularisation,
  its statistics added to the step report) and `stop_text_encoder_training` (the
  text-encoder LoRA stops learning after that share of the steps).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import nn

from trainer.config import TrainingConfig
from trainer.events import Event, EventCallback


def efficient_attention_processor() -> Any:
    """A diffusers attention processor that runs SDPA on its memory-efficient kernels.

    Not sliced attention (`set_attention_slice`): in training, autograd keeps every slice's
    probabilities, so slicing costs more memory and time than one SDPA call."""
    from diffusers.models.attention_processor import AttnProcessor2_0
    from torch.nn.attention import SDPBackend, sdpa_kernel

    class EfficientSDPAProcessor(AttnProcessor2_0):
        """AttnProcessor2_0 held to the memory-efficient / flash SDPA kernels on CUDA."""

        def __call__(self, attn, hidden_states, *args, **kwargs):
            if not hidden_states.is_cuda:
                return super().__call__(attn, hidden_states, *args, **kwargs)
            with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.FLASH_ATTENTION]):
                return super().__call__(attn, hidden_states, *args, **kwargs)

    return EfficientSDPAProcessor()


def apply_attention_and_fp8(cfg: TrainingConfig, unet: nn.Module) -> None:
    """mem_eff_attn and fp8_base on the loaded U-Net (before the LoRA is injected)."""
    if cfg.mem_eff_attn and cfg.xformers != "xformers":
        unet.set_attn_processor(efficient_attention_processor())
    if cfg.fp8_base:
        unet.to(dtype=torch.float8_e4m3fn)


def lora_dtype(cfg: TrainingConfig) -> torch.dtype | None:
    """The dtype of the LoRA weights: fp16 / bf16 with full_fp16 / full_bf16, else None (fp32)."""
    if cfg.full_fp16:
        return torch.float16
    if cfg.full_bf16:
        return torch.bfloat16
    return None


def allow_fp16_gradients(accelerator: Any) -> None:
    """full_fp16: let accelerate's grad scaler unscale fp16 gradients (it refuses by default)."""
    scaler = getattr(accelerator, "scaler", None)
    if scaler is None:
        return
    original = scaler._unscale_grads_

    @functools.wraps(original)
    def unscale(optimizer, inv_scale, found_inf, allow_fp16):
        return original(optimizer, inv_scale, found_inf, True)

    scaler._unscale_grads_ = unscale


def noise_kwargs(cfg: TrainingConfig) -> dict[str, Any]:
    """Keyword arguments of `trainer.run.noise.sample_noise` for these settings."""
    original = cfg.noise_offset_type == "Original"
    return {
        "noise_offset": cfg.noise_offset if original else 0.0,
        "adaptive_noise_scale": cfg.adaptive_noise_scale if original else 0.0,
        "noise_offset_random_strength": cfg.noise_offset_random_strength and original,
        "multires_iterations": cfg.multires_noise_iterations if not original else 0,
        "multires_discount": cfg.multires_noise_discount,
    }


def per_sample_training_loss(
    cfg: TrainingConfig,
    pred: torch.Tensor,
    target: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    *,
    v_prediction: bool,
    num_train_timesteps: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss of each sample for `loss_type`, then the per-sample weights of the settings
    (sd-scripts' order): scale_v_pred_loss_like_noise_pred, v_pred_like_loss,
    debiased_estimation_loss."""
    from trainer.run.loss import add_v_pred_like_loss, huber_threshold, per_sample_loss, v_pred_loss_scale
    from trainer.run.noise import debiased_estimation_weights

    huber_c = None
    if cfg.loss_type in ("huber", "smooth_l1"):
        huber_c = huber_threshold(
            timesteps,
            alphas_cumprod,
            schedule=cfg.huber_schedule,
            huber_c=cfg.huber_c,
            huber_scale=cfg.huber_scale,
            num_train_timesteps=num_train_timesteps,
        )
    loss = per_sample_loss(pred, target, cfg.loss_type, huber_c, mask)  # mask: masked_loss
    if cfg.scale_v_pred_loss_like_noise_pred and v_prediction:
        loss = loss * v_pred_loss_scale(timesteps, alphas_cumprod)
    if cfg.v_pred_like_loss:
        loss = add_v_pred_like_loss(loss, timesteps, alphas_cumprod, cfg.v_pred_like_loss)
    if cfg.debiased_estimation_loss:
        loss = loss * debiased_estimation_weights(timesteps, alphas_cumprod, v_prediction)
    return loss


def text_encoder_stop_step(stop_percent: int, total_steps: int) -> int:
    """The step after which the text encoder stops learning (0 = never), as the Kohya GUI counts."""
    if stop_percent <= 0:
        return 0
    return math.ceil(total_steps * stop_percent / 100)


class StepHooks:
    """What happens after each optimizer step besides the step itself."""

    def __init__(
        self,
        cfg: TrainingConfig,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        device: torch.device,
        emit: EventCallback,
        train_text_encoder: bool,
    ) -> None:
        self.cfg, self.network, self.optimizer, self.device, self.emit = cfg, network, optimizer, device, emit
        self.stop_te_at = (
            text_encoder_stop_step(cfg.stop_text_encoder_training, total_steps) if train_text_encoder else 0
        )
        self.te_stopped = False
        self.norms: dict[str, float] = {}

    def after_step(self, step: int) -> None:
        """Max-norm regularisation; stop the text encoder once its share of steps is done."""
        if self.cfg.scale_weight_norms > 0:
            from trainer.network.max_norm import apply_max_norm

            stats = apply_max_norm(self.network, self.cfg.scale_weight_norms, self.device)
            self.norms = {
                "keys_scaled": stats.keys_scaled,
                "average_key_norm": stats.mean_norm,
                "max_key_norm": stats.max_norm,
            }
        if self.stop_te_at and not self.te_stopped and step >= self.stop_te_at:
            self.stop_text_encoder(step)

    def resumed_at(self, step: int) -> None:
        """A run resumed past the text-encoder stop starts with the text encoder frozen."""
        if self.stop_te_at and step >= self.stop_te_at and not self.te_stopped:
            self.stop_text_encoder(step)

    def stop_text_encoder(self, step: int) -> None:
        """Freeze the text-encoder LoRA: no gradient from now on, so every optimizer skips it.

        It stays in its optimizer group (emptying the group would orphan its optimizer state,
        which breaks saving and resuming the training state); schedule-free optimizers keep
        swapping it to its average for saves like every other weight."""
        for lora in self.network.te_loras:
            for p in lora.parameters():
                p.requires_grad_(False)
                p.grad = None
        self.te_stopped = True
        self.emit(
            Event(
                "log",
                {
                    "message": f"Text encoder training stopped after step {step} "
                    f"({self.cfg.stop_text_encoder_training}% of the steps)"
                },
            )
        )

    def report(self) -> dict[str, float]:
        """Extra fields for the step event (the max-norm statistics, as Kohya logs them)."""
        return dict(self.norms)
