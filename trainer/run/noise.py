"""Noise, timesteps and loss weights for the DDPM training objective (docs/ANCHORS.md section 7).

Small pure functions on tensors, each one formula, so they are tested on CPU directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_noise(
    latents: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    noise_offset: float = 0.0,
    multires_iterations: int = 0,
    multires_discount: float = 0.3,
    adaptive_noise_scale: float = 0.0,
    noise_offset_random_strength: bool = False,
) -> torch.Tensor:
    """Gaussian noise like `latents`, with the optional offset or multi-resolution noise.

    The offset is `noise_offset` (times U[0, 1) per step with `noise_offset_random_strength`)
    plus `adaptive_noise_scale` x |mean of each latent channel|, clamped at 0 (Kohya's).
    """
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    b, c, h, w = latents.shape
    if multires_iterations > 0:
        # Add coarser noise at size / r^i (r in [2, 4)), weaker by discount^i, then renormalise.
        up = torch.nn.Upsample(size=(h, w), mode="bilinear")
        for i in range(multires_iterations):
            r = float(torch.rand((), generator=generator, device=latents.device)) * 2 + 2
            sh, sw = max(1, int(h / r ** (i + 1))), max(1, int(w / r ** (i + 1)))
            coarse = torch.randn(
                (b, c, sh, sw), generator=generator, device=latents.device, dtype=latents.dtype
            )
            noise = noise + up(coarse) * multires_discount ** (i + 1)
            if sh == 1 or sw == 1:
                break
        noise = noise / noise.std()
    elif noise_offset > 0:
        # A constant per-sample, per-channel shift: lets the model learn very dark/bright images.
        offset: float | torch.Tensor = noise_offset
        if noise_offset_random_strength:
            offset = torch.rand((), generator=generator, device=latents.device).item() * noise_offset
        if adaptive_noise_scale:
            # Images far from mid-grey (a large channel mean) get a larger offset.
            channel_mean = latents.float().mean(dim=(2, 3), keepdim=True).abs()
            offset = torch.clamp(offset + adaptive_noise_scale * channel_mean, min=0.0).to(latents.dtype)
        noise = noise + offset * torch.randn(
            (b, c, 1, 1), generator=generator, device=latents.device, dtype=latents.dtype
        )
    return noise


def perturb_noise(
    noise: torch.Tensor,
    gamma: float,
    *,
    random_strength: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Input perturbation (ip_noise_gamma): the noise put into the input, not the target.

    noise + gamma * randn; with `random_strength` gamma is drawn from U[0, gamma) each step.
    """
    if gamma <= 0:
        return noise
    strength = gamma
    if random_strength:
        strength = torch.rand((), generator=generator, device=noise.device).item() * gamma
    extra = torch.randn(noise.shape, generator=generator, device=noise.device, dtype=noise.dtype)
    return noise + strength * extra


def sample_timesteps(
    batch: int,
    min_timestep: int = 0,
    max_timestep: int = 1000,
    *,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One training timestep per sample, uniform in [min_timestep, max_timestep) (sd-scripts').

    A narrower range trains only those noise levels: low timesteps are fine detail, high
    ones composition.
    """
    return torch.randint(min_timestep, max_timestep, (batch,), device=device, generator=generator)


def snr(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio a / (1 - a) at each timestep."""
    a = alphas_cumprod.to(timesteps.device)[timesteps].float()
    return a / (1.0 - a)


def min_snr_weights(
    timesteps: torch.Tensor, alphas_cumprod: torch.Tensor, gamma: float, v_prediction: bool = False
) -> torch.Tensor:
    """Min-SNR-gamma loss weights: min(snr, g) / snr (epsilon) or min(snr, g) / (snr + 1) (v)."""
    s = snr(timesteps, alphas_cumprod)
    clipped = torch.clamp(s, max=gamma)
    return clipped / (s + 1.0) if v_prediction else clipped / s


def debiased_estimation_weights(
    timesteps: torch.Tensor, alphas_cumprod: torch.Tensor, v_prediction: bool = False
) -> torch.Tensor:
    """Debiased estimation loss weights: 1 / sqrt(snr) (epsilon) or 1 / (snr + 1) (v).

    snr is capped at 1000 (sd-scripts'), so the cleanest timesteps keep a small weight.
    """
    s = torch.clamp(snr(timesteps, alphas_cumprod), max=1000.0)
    return 1.0 / (s + 1.0) if v_prediction else 1.0 / torch.sqrt(s)


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each sample, in fp32."""
    return F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
