"""The per-sample training loss: l2 / l1 / Huber / smooth-L1, and the v-prediction scale.

Each function is one formula on tensors (sd-scripts' meanings, so a Kohya preset's
loss_type / huber_c / huber_schedule train the same):
- l2: mean (pred - target)^2;  l1: mean |pred - target|.
- huber (pseudo-Huber): mean 2c (sqrt(d^2 + c^2) - c), which is ~d^2 for small
  differences and ~2c|d| for large ones, so outliers pull less.
- smooth_l1: mean 2 (sqrt(d^2 + c^2) - c), the same curve divided by c.
- The threshold c per sample depends on its timestep t (`huber_schedule`):
  constant: c * scale;  exponential: exp(-alpha t) * scale with alpha = -ln(c) / T
  (from `scale` at t = 0 down to c * scale at t = T);  snr: (1 - c) / (1 + sigma)^2 + c,
  sigma = sqrt((1 - a_t) / a_t) (large c for clean inputs, near c for noisy ones).
- v_pred_like_loss adds strength x loss / (snr / (snr + 1)) (snr capped at 1000).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainer.data.latent_cache import latent_mask
from trainer.run.noise import snr


def huber_threshold(
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    *,
    schedule: str,
    huber_c: float,
    huber_scale: float = 1.0,
    num_train_timesteps: int = 1000,
) -> torch.Tensor:
    """The Huber threshold c of each sample, shape [B], in fp32."""
    t = timesteps.float()
    if schedule == "constant":
        return torch.full_like(t, huber_c * huber_scale)
    if schedule == "exponential":
        alpha = -math.log(huber_c) / num_train_timesteps
        return torch.exp(-alpha * t) * huber_scale
    if schedule == "snr":
        a = alphas_cumprod.to(timesteps.device)[timesteps].float()
        sigma = ((1.0 - a) / a).sqrt()
        return (1.0 - huber_c) / (1.0 + sigma) ** 2 + huber_c
    raise ValueError(f"unknown huber_schedule {schedule!r}")


def per_sample_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    loss_type: str = "l2",
    huber_c: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss of each sample (mean over its elements), shape [B], computed in fp32.

    `mask` ([B, 1, h, w], 0..1, masked_loss): each element's loss is multiplied by it
    before the mean (sd-scripts' masked loss: masked-out areas teach nothing)."""
    pred, target = pred.float(), target.float()
    dims = tuple(range(1, pred.dim()))
    if loss_type == "l2":
        loss = F.mse_loss(pred, target, reduction="none")
    elif loss_type == "l1":
        loss = F.l1_loss(pred, target, reduction="none")
    elif loss_type in ("huber", "smooth_l1"):
        if huber_c is None:
            raise ValueError(f"loss_type {loss_type!r} needs the Huber threshold per sample")
        c = huber_c.float().to(pred.device).view(-1, *([1] * len(dims)))
        curve = torch.sqrt((pred - target) ** 2 + c**2) - c
        loss = 2 * c * curve if loss_type == "huber" else 2 * curve
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}")
    if mask is not None:
        loss = loss * latent_mask(mask, loss.shape[-2:]).to(loss.device)
    return loss.mean(dim=dims)


def v_pred_loss_scale(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """scale_v_pred_loss_like_noise_pred: snr / (snr + 1), with snr capped at 1000 (Kohya)."""
    s = torch.clamp(snr(timesteps, alphas_cumprod), max=1000.0)
    return s / (s + 1.0)


def add_v_pred_like_loss(
    loss: torch.Tensor, timesteps: torch.Tensor, alphas_cumprod: torch.Tensor, strength: float
) -> torch.Tensor:
    """v_pred_like_loss: loss + strength x loss / (snr / (snr + 1)), snr capped at 1000 (Kohya).

    Adds a share of the loss weighted like v-prediction's, which weighs the noisy
    (low-snr) timesteps more.
    """
    return loss + loss / v_pred_loss_scale(timesteps, alphas_cumprod) * strength
