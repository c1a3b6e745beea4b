"""Max-norm regularisation (`scale_weight_norms`), applied after each optimizer step.

For each LoRA module the weight change it adds, W = up @ down x alpha / rank, is
measured by its Frobenius norm; a module whose norm is above `max_norm` has both its
``up`` and ``down`` weights multiplied by sqrt(max_norm / norm), which brings the norm
exactly to `max_norm` (Kohya's rule). Small deltas are untouched. LyCORIS networks use
lycoris' own implementation of the same rule for their algorithms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class MaxNormStats:
    """What Kohya logs: how many modules were scaled, the mean and the largest norm."""

    keys_scaled: int
    mean_norm: float
    max_norm: float


def delta_norm(lora: nn.Module) -> torch.Tensor:
    """||up @ down|| x alpha / rank of one LoRA module (conv kernels flattened)."""
    down = lora.lora_down.weight.float()
    up = lora.lora_up.weight.float()
    delta = up.flatten(1) @ down.flatten(1)
    return delta.norm() * (float(lora.alpha) / down.shape[0])


@torch.no_grad()
def apply_max_norm(network: nn.Module, max_norm: float, device: torch.device) -> MaxNormStats:
    """Scale every module whose delta norm exceeds `max_norm`; returns the statistics."""
    if hasattr(network, "apply_max_norm"):  # LyCORIS: lycoris' own per-algorithm rule
        return MaxNormStats(*network.apply_max_norm(max_norm, device))
    norms: list[float] = []
    scaled = 0
    for lora in network.loras:
        norm = delta_norm(lora)
        if norm > max_norm:
            factor = torch.sqrt(max_norm / norm)
            lora.lora_up.weight.mul_(factor.to(lora.lora_up.weight.dtype))
            lora.lora_down.weight.mul_(factor.to(lora.lora_down.weight.dtype))
            scaled += 1
            norm = torch.tensor(float(max_norm))
        norms.append(float(norm))
    if not norms:
        return MaxNormStats(0, 0.0, 0.0)
    return MaxNormStats(scaled, sum(norms) / len(norms), max(norms))
