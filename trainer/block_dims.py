"""Kohya's block-wise ranks (block_dims / block_alphas / conv_block_dims / conv_block_alphas).

Pure Python (no torch): parsed by the config check and by the network builder.

One value per block of the original U-Net, in sd-scripts' order:
- SD1.x / SD2.x, 25 values: IN00..IN11, MID, OUT00..OUT11 (IN00 is conv_in: no LoRA).
- SDXL, 23 values: the time/label embedding (no LoRA), IN00..IN08, the three parts of
  the middle block (MID00..MID02), OUT00..OUT08, the output layer (no LoRA).
A module's block is the one of the block-wise learning rates (`block_lr.block_of`).

Rules (sd-scripts' ``networks.lora``): the block path is on when `block_dims` or a
block learning-rate weight is set. Then Linear and 1x1 conv layers take the block's dim
and alpha (`block_alphas`, else network_alpha); 3x3 convs take `conv_block_dims` /
`conv_block_alphas` (else conv alpha), or conv_dim everywhere for LoCon without
`conv_block_dims`. A dim of 0, or a learning-rate weight of 0, means no module there.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .block_lr import BlockWeights, block_of

_SDXL_MID = re.compile(r"^lora_unet_middle_block_(\d+)_")
DIMS_KEYS = ("block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas")


def block_total(arch: str) -> int:
    """How many values a block list has: 23 for SDXL, 25 for SD1.x/SD2.x."""
    return 23 if arch == "sdxl" else 25


def block_names(arch: str) -> str:
    """The blocks in order, for messages."""
    if arch == "sdxl":
        return "embedding, IN00-IN08, MID00-MID02, OUT00-OUT08, out"
    return "IN00-IN11, MID, OUT00-OUT11"


def block_index(lora_name: str, arch: str) -> int | None:
    """The position of a U-Net module's block in a block list; None outside the blocks."""
    where = block_of(lora_name)
    if where is None:
        return None
    side, index = where
    if arch == "sdxl":
        if side == "mid":
            m = _SDXL_MID.match(lora_name)
            return 10 + (int(m.group(1)) if m else 0)
        return 1 + index if side == "down" else 13 + index
    if side == "mid":
        return 12
    return index if side == "down" else 13 + index


def parse_block_values(text: str, arch: str, *, whole: bool) -> list[float] | None:
    """The list of one block setting, or None when empty; ValueError names what is wrong."""
    text = str(text).strip()
    if not text:
        return None
    n = block_total(arch)
    kind = "SDXL" if arch == "sdxl" else "SD1.x/SD2.x"
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != n:
        raise ValueError(f"{text!r} has {len(parts)} values; {kind} needs {n} ({block_names(arch)})")
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"{text!r}: {part!r} is not a number") from None
        if not math.isfinite(value) or value < 0 or (whole and not value.is_integer()):
            what = "whole numbers >= 0" if whole else "numbers >= 0"
            raise ValueError(f"{text!r}: {part!r} is not allowed; the values must be {what}")
        values.append(int(value) if whole else value)
    return values


@dataclass(frozen=True)
class BlockDims:
    """(rank, alpha) per U-Net block; `of(name, is_3x3)` gives one module's, rank 0 = none."""

    arch: str
    dims: list[int]
    alphas: list[float]
    conv_dims: list[int] | None
    conv_alphas: list[float] | None
    lr_weights: BlockWeights | None = None

    @classmethod
    def from_settings(cls, texts: dict[str, str], *, arch: str, rank: int, alpha: float,
                      conv_rank: int, conv_alpha: float,
                      lr_weights: BlockWeights | None) -> BlockDims | None:
        """None when the block path is off (no block_dims and no learning-rate weights).

        `texts` holds the four settings of DIMS_KEYS; `conv_rank` 0 means no LoCon.
        """
        dims = parse_block_values(texts.get("block_dims", ""), arch, whole=True)
        if dims is None and lr_weights is None:
            return None
        n = block_total(arch)
        alphas = parse_block_values(texts.get("block_alphas", ""), arch, whole=False)
        conv_dims = parse_block_values(texts.get("conv_block_dims", ""), arch, whole=True)
        conv_alphas = parse_block_values(texts.get("conv_block_alphas", ""), arch, whole=False)
        if conv_dims is None and conv_rank > 0:
            conv_dims, conv_alphas = [conv_rank] * n, [conv_alpha] * n
        elif conv_dims is not None and conv_alphas is None:
            conv_alphas = [conv_alpha] * n
        elif conv_dims is None:
            conv_alphas = None
        return cls(arch, dims or [rank] * n, alphas or [alpha] * n, conv_dims, conv_alphas, lr_weights)

    @property
    def conv(self) -> bool:
        """Whether 3x3 convolutions get modules at all."""
        return self.conv_dims is not None

    def of(self, lora_name: str, is_3x3: bool) -> tuple[int, float]:
        """(rank, alpha) of a U-Net module; rank 0 means the module is left out."""
        index = block_index(lora_name, self.arch)
        if index is None:
            return 0, 0.0  # sd-scripts gives no block to such a module, so no rank
        if self.lr_weights is not None and self.lr_weights.weight(lora_name) == 0:
            return 0, 0.0  # a block that does not learn gets no module (sd-scripts)
        if is_3x3:
            if self.conv_dims is None or self.conv_alphas is None:
                return 0, 0.0
            return self.conv_dims[index], self.conv_alphas[index]
        return self.dims[index], self.alphas[index]
