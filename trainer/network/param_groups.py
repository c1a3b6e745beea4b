"""Optimizer parameter groups: per-part learning rates, LoRA+ ratios, block-wise weights.

- Each trained part (text encoder, U-Net) has its learning rate; a part at 0 is frozen
  (requires_grad False, left out of the optimizer).
- LoRA+ (`loraplus_*_lr_ratio`): the "up" weights (every parameter whose name holds
  ``lora_up``, as Kohya and lycoris decide) learn at lr x ratio in a group of their own.
- Block weights (`down_lr_weight` ...): a U-Net module learns at lr x its block's weight;
  a block at weight 0 is frozen, like a part at lr 0.

Works on any network exposing ``te_loras`` / ``unet_loras`` with ``lora_name`` (our
LoRANetwork and the LyCORIS one). Group names ("unet", "unet plus", "unet block 0.5",
"text_encoder") label the per-group learning rates in the logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from trainer.config.rules.blocks import BlockWeights


@dataclass(frozen=True)
class LoRAPlus:
    """LoRA+ ratios: the part-specific ones win over the general one; 0 / None = off."""

    ratio: float = 0.0
    unet_ratio: float = 0.0
    text_encoder_ratio: float = 0.0

    def for_part(self, part: str) -> float:
        own = self.unet_ratio if part == "unet" else self.text_encoder_ratio
        return own or self.ratio or 0.0


def build_param_groups(
    network: nn.Module,
    *,
    unet_lr: float,
    text_encoder_lr: float,
    loraplus: LoRAPlus | None = None,
    block_weights: BlockWeights | None = None,
) -> list[dict]:
    """Parameter groups for the optimizer; raises ValueError when nothing would train."""
    loraplus = loraplus or LoRAPlus()
    frozen_down = getattr(network, "frozen_down", False)  # LoRA-FA
    groups: dict[tuple[str, float, bool], dict] = {}
    for part, loras, lr in (
        ("text_encoder", network.te_loras, text_encoder_lr),
        ("unet", network.unet_loras, unet_lr),
    ):
        ratio = loraplus.for_part(part)
        for lora in loras:
            weight = block_weights.weight(lora.lora_name) if part == "unet" and block_weights else 1.0
            for name, param in lora.named_parameters():
                trained = bool(lr) and weight > 0 and not (frozen_down and "lora_down" in name)
                param.requires_grad_(trained)
                if not trained:
                    continue
                plus = bool(ratio) and "lora_up" in name
                key = (part, weight, plus)
                if key not in groups:
                    label = part + (" plus" if plus else "") + (f" block {weight:g}" if weight != 1.0 else "")
                    groups[key] = {
                        "params": [],
                        "lr": float(lr) * weight * (ratio if plus else 1.0),
                        "name": label,
                    }
                groups[key]["params"].append(param)
    if not groups:
        raise ValueError(
            "no LoRA parameters to train: every trained part has learning rate 0 (or every block weight is 0)"
        )
    return list(groups.values())
