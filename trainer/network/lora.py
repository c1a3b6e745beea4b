"""One LoRA / LoCon module wrapped around a base ``nn.Linear`` or ``nn.Conv2d``.

    y = base(x) + up(down(x)) * multiplier * scale,      scale = alpha / rank

``down`` maps the input to ``rank`` channels (for a conv it has the base's kernel,
stride, padding and dilation), ``up`` maps back with a 1x1 conv / linear. ``down`` starts
Kaiming-uniform (a = sqrt(5)) and ``up`` at zero, so a new module changes nothing.
Alpha 0 or None means alpha = rank (scale 1). The LoRA weights are kept in fp32 whatever
the base dtype is: the input is cast to fp32 and the delta back to the output's dtype.

The module is injected by replacing the base module's ``forward`` (the original is kept
and restored by :meth:`LoRAModule.restore`), so the base stays in the model at the same
path and the model's own names and state dict do not change. The base is deliberately
*not* a registered sub-module: the LoRA's state dict holds only ``lora_down.weight``,
``lora_up.weight`` and ``alpha``, which are the Kohya file's keys.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LoRAModule(nn.Module):
    """A low-rank delta on one base layer, with Kohya's three dropouts.

    Features and the argument that controls each:
    - ``multiplier``: strength of the delta (0 switches it off; changeable at any time).
    - ``dropout``: dropout on ``down``'s output (Kohya ``network_dropout``).
    - ``rank_dropout``: zero whole ranks per sample, rescaled by 1 / (1 - p).
    - ``module_dropout``: skip the whole delta for a forward call with probability p.
    Dropouts act only while both this module and its base are in training mode, so a
    model switched to ``eval()`` for sampling is never randomly perturbed.
    """

    def __init__(
        self,
        name: str,
        base: nn.Module,
        rank: int,
        alpha: float | None = None,
        *,
        multiplier: float = 1.0,
        dropout: float = 0.0,
        rank_dropout: float = 0.0,
        module_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank} for {name}")
        for label, p in (
            ("dropout", dropout),
            ("rank_dropout", rank_dropout),
            ("module_dropout", module_dropout),
        ):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{label} must be in [0, 1), got {p}")
        device = base.weight.device
        if isinstance(base, nn.Conv2d):
            if base.groups != 1:
                raise ValueError(f"{name}: grouped convolutions are not supported")
            self.lora_down = nn.Conv2d(
                base.in_channels,
                rank,
                base.kernel_size,
                base.stride,
                base.padding,
                base.dilation,
                bias=False,
                device=device,
                dtype=torch.float32,
            )
            self.lora_up = nn.Conv2d(
                rank, base.out_channels, 1, 1, bias=False, device=device, dtype=torch.float32
            )
        elif isinstance(base, nn.Linear):
            self.lora_down = nn.Linear(base.in_features, rank, bias=False, device=device, dtype=torch.float32)
            self.lora_up = nn.Linear(rank, base.out_features, bias=False, device=device, dtype=torch.float32)
        else:
            raise TypeError(f"{name}: LoRA wraps nn.Linear or nn.Conv2d, not {type(base).__name__}")
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)

        alpha = float(rank) if not alpha else float(alpha)
        self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float32, device=device))
        self.lora_name = name
        self.rank = rank
        self.scale = alpha / rank
        self.multiplier = multiplier
        self.dropout = dropout
        self.rank_dropout = rank_dropout
        self.module_dropout = module_dropout
        self.merged = False
        # Plain attributes (not sub-modules): the base belongs to the model, not to us.
        object.__setattr__(self, "base", base)
        self._org_forward: Callable[[Tensor], Tensor] | None = None
        self._had_instance_forward = False

    # -- injection -------------------------------------------------------------------
    def apply_to(self) -> None:
        """Route the base module's calls through this LoRA."""
        if self._org_forward is not None:
            raise RuntimeError(f"{self.lora_name} is already applied")
        self._had_instance_forward = "forward" in vars(self.base)
        self._org_forward = self.base.forward
        self.base.forward = self.forward

    def restore(self) -> None:
        """Give the base module its original forward back (the delta stops applying)."""
        if self._org_forward is None:
            return
        if self._had_instance_forward:
            self.base.forward = self._org_forward
        else:
            del self.base.forward  # back to the class's own forward
        self._org_forward = None

    def refresh_scale(self) -> None:
        """Recompute ``scale`` after ``alpha`` was loaded from a file."""
        self.scale = float(self.alpha) / self.rank

    # -- forward ---------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        org = self._org_forward if self._org_forward is not None else self.base.forward
        out = org(x)
        if self.merged or self.multiplier == 0:
            return out
        training = self.training and self.base.training
        if training and self.module_dropout > 0 and torch.rand(()) < self.module_dropout:
            return out

        h = self.lora_down(x.to(self.lora_down.weight.dtype))
        scale = self.scale
        if training and self.dropout > 0:
            h = F.dropout(h, p=self.dropout)
        if training and self.rank_dropout > 0:
            mask = torch.rand(h.shape[0], self.rank, device=h.device) > self.rank_dropout
            if h.dim() == 4:  # conv: (B, r, H, W)
                mask = mask[:, :, None, None]
            elif h.dim() == 3:  # tokens: (B, L, r)
                mask = mask[:, None, :]
            h = h * mask.to(h.dtype)
            scale = scale / (1.0 - self.rank_dropout)
        return _add_up(out, h, self.lora_up, self.multiplier * scale)

    # -- merging ---------------------------------------------------------------------
    def delta_weight(self) -> Tensor:
        """The fp32 weight change this module adds: (up @ down) * multiplier * scale."""
        down = self.lora_down.weight.float()
        up = self.lora_up.weight.float()
        if isinstance(self.base, nn.Conv2d):
            up = up.flatten(1)  # (out, r)
            delta = torch.einsum("or,rikl->oikl", up, down)
        else:
            delta = up @ down
        return delta * (self.multiplier * self.scale)

    @torch.no_grad()
    def merge_to_base(self) -> None:
        """Add the delta into the base weight; the module then only calls the base."""
        if self.merged:
            raise RuntimeError(f"{self.lora_name} is already merged")
        delta = self.delta_weight()
        if not torch.isfinite(delta).all():
            raise ValueError(f"{self.lora_name}: the LoRA delta has NaN/inf values; refusing to merge")
        weight = self.base.weight
        weight.add_(delta.to(weight.device, weight.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge_from_base(self) -> None:
        """Undo :meth:`merge_to_base` (exact up to the base dtype's rounding)."""
        if not self.merged:
            raise RuntimeError(f"{self.lora_name} is not merged")
        weight = self.base.weight
        weight.sub_(self.delta_weight().to(weight.device, weight.dtype))
        self.merged = False

    def extra_repr(self) -> str:
        alpha = self.scale * self.rank
        return f"name={self.lora_name}, rank={self.rank}, alpha={alpha:g}, multiplier={self.multiplier}"


def _add_up(out: Tensor, h: Tensor, up: nn.Module, scale: float) -> Tensor:
    """out + up(h) * scale. When the dtypes agree, as one (b)addmm: the product, the scaling
    and the sum in one pass over the output, where the plain form makes three (a matmul or a
    1x1 conv, which on a CPU takes the slow unfolding path for so few input channels, then
    a multiply and an add); the same result up to float rounding."""
    if out.dtype == h.dtype == up.weight.dtype:
        if isinstance(up, nn.Linear):
            flat = torch.addmm(
                out.reshape(-1, out.shape[-1]), h.reshape(-1, h.shape[-1]), up.weight.t(), alpha=scale
            )
            return flat.view(out.shape)
        if out.dim() == 4 and h.shape[2:] == out.shape[2:]:  # the 1x1 up conv: (B, r, H, W) -> (B, C, H, W)
            b, c = out.shape[:2]
            weight = up.weight.view(1, c, -1).expand(b, -1, -1)
            return torch.baddbmm(
                out.reshape(b, c, -1), weight, h.reshape(b, h.shape[1], -1), alpha=scale
            ).view(out.shape)
    delta = up(h) * scale
    return out + delta.to(out.dtype)
