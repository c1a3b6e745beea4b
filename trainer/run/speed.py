"""The opt-in speed settings, applied to the U-Net once its LoRA is in place.

- `channels_last` (GPU only): the U-Net's weights in NHWC, so its convolutions and their
  activations run in the layout cuDNN's tensor-core kernels prefer. The LoRA weights are
  not the U-Net's parameters and keep their own layout.
- `torch_compile`: each down / mid / up block compiled in place (`Module.compile`), which
  keeps every module at its path, so LoRA names, saving and sampling are unchanged.
  Compiling block by block rather than the whole U-Net keeps the graphs small (a shorter
  first compile), and the same code object serves every block of one type.
"""

from __future__ import annotations

import torch

from trainer.config import TrainingConfig


def unet_blocks(unet: torch.nn.Module) -> list[torch.nn.Module]:
    """The U-Net's down, mid and up blocks, in order (the units that get compiled)."""
    mid = [unet.mid_block] if getattr(unet, "mid_block", None) is not None else []
    return [*unet.down_blocks, *mid, *unet.up_blocks]


def apply_speed_options(cfg: TrainingConfig, unet: torch.nn.Module, device: torch.device) -> list[str]:
    """Apply `channels_last` / `torch_compile` to `unet`; returns a log line for each."""
    notes: list[str] = []
    if cfg.channels_last and device.type == "cuda":
        unet.to(memory_format=torch.channels_last)
        notes.append("U-Net in channels-last memory layout.")
    if cfg.torch_compile:
        import torch._dynamo.config as dynamo_config

        blocks = unet_blocks(unet)
        # Static shapes: blocks of one class share a code object but see different sizes,
        # which would otherwise switch on dynamic shapes (slower kernels, and an inductor
        # error on CPU). Each (block, bucket) pair then has its graph: allow enough of them.
        limit = max(dynamo_config.recompile_limit, 8 * len(blocks))
        dynamo_config.recompile_limit = limit
        for block in blocks:
            block.compile(dynamic=False)
        notes.append(f"Compiling {len(blocks)} U-Net blocks: the first steps wait for the compiler.")
    return notes
