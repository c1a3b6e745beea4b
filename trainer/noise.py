"""Noise, timesteps and loss weights for the DDPM training objective (ANCHORS.md section 7).

Small pure functions on tensors, each one formula, so they are tested on CPU directly.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F


def sample_noise(latents: torch.Tensor, *, generator: torch.Generator | None = None,
                 noise_offset: float = 0.0, multires_iterations: int = 0,
                 multires_discount: float = 0.3) -> torch.Tensor:
    """Gaussian noise like `latents`, with the optional offset or multi-resolution noise."""
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    b, c, h, w = latents.shape
    if multires_iterations > 0:
        # Add coarser noise at size / r^i (r in [2, 4)), weaker by discount^i, then renormalise.
        up = torch.nn.Upsample(size=(h, w), mode="bilinear")
        for i in range(multires_iterations):
            r = float(torch.rand((), generator=generator, device=latents.device)) * 2 + 2
            sh, sw = max(1, int(h / r ** (i + 1))), max(1, int(w / r ** (i + 1)))
            coarse = torch.randn((b, c, sh, sw), generator=generator, device=latents.device,
                                 dtype=latents.dtype)
            noise = noise + up(coarse) * multires_discount ** (i + 1)
            if sh == 1 or sw == 1:
                break
        noise = noise / noise.std()
    elif noise_offset > 0:
        # A constant per-sample, per-channel shift: lets the model learn very dark/bright images.
        noise = noise + noise_offset * torch.randn((b, c, 1, 1), generator=generator,
                                                   device=latents.device, dtype=latents.dtype)
    return noise


def snr(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio a / (1 - a) at each timestep."""
    a = alphas_cumprod.to(timesteps.device)[timesteps].float()
    return a / (1.0 - a)


def min_snr_weights(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor, gamma: float,
                    v_prediction: bool = False) -> torch.Tensor:
    """Min-SNR-gamma loss weights: min(snr, g) / snr (epsilon) or min(snr, g) / (snr + 1) (v)."""
    s = snr(timesteps, alphas_cumprod)
    clipped = torch.clamp(s, max=gamma)
    return clipped / (s + 1.0) if v_prediction else clipped / s


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each sample, in fp32."""
    return F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
