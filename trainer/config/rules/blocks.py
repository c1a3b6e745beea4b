"""Kohya's block-wise values: learning-rate weights and ranks, per block of the U-Net.

Pure Python (no torch): parsed and checked by the config check and the dry-run plan,
applied by the network builder (trainer.network).

## Learning-rate weights (down_lr_weight / mid_lr_weight / up_lr_weight)
Blocks are the original SD U-Net's: IN00..IN11 (down), the middle block, OUT00..OUT11
(up) for SD1.x/SD2.x, IN00..IN08 / OUT00..OUT08 for SDXL. A weight list is either
comma-separated numbers (fewer than the block count: the rest are 1; more: an error) or a
curve over the blocks, optionally raised by "+offset":
- sine:            sin(pi/2 * i/(n-1))            0 -> 1
- cosine:          sin(pi/2 * (n-1-i)/(n-1))      1 -> 0
- linear:          i/(n-1)                        0 -> 1
- reverse_linear:  (n-1-i)/(n-1)                  1 -> 0
- zeros:           0
A block whose weight is at or below `block_lr_zero_threshold` (and any weight 0) is not
trained. Modules outside these blocks (text encoder, conv_in, ...) keep weight 1.

## Ranks (block_dims / block_alphas / conv_block_dims / conv_block_alphas)
One value per block of the original U-Net, in sd-scripts' order:
- SD1.x / SD2.x, 25 values: IN00..IN11, MID, OUT00..OUT11 (IN00 is conv_in: no LoRA).
- SDXL, 23 values: the time/label embedding (no LoRA), IN00..IN08, the three parts of
  the middle block (MID00..MID02), OUT00..OUT08, the output layer (no LoRA).
A module's block is the one of the block-wise learning rates (`block_of`).

Rules (Kohya's LoRA network): the block path is on when `block_dims` or a
block learning-rate weight is set. Then Linear and 1x1 conv layers take the block's dim
and alpha (`block_alphas`, else network_alpha); 3x3 convs take `conv_block_dims` /
`conv_block_alphas` (else conv alpha), or conv_dim everywhere for LoCon without
`conv_block_dims`. A dim of 0, or a learning-rate weight of 0, means no module there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_CURVES = ("sine", "cosine", "linear", "reverse_linear", "zeros")
_SD_UPDOWN = re.compile(r"_(up|down)_blocks_(\d+)_(resnets|upsamplers|downsamplers|attentions)_(\d+)_")
_SGM = re.compile(r"^lora_unet_(input_blocks|output_blocks)_(\d+)_")


def block_count(arch: str) -> int:
    """Blocks on each side of the U-Net: 12 for SD1.x/SD2.x, 9 for SDXL."""
    return 9 if arch == "sdxl" else 12


def _curve(name: str, n: int) -> list[float]:
    last = max(1, n - 1)
    if name == "sine":
        return [math.sin(math.pi / 2 * i / last) for i in range(n)]
    if name == "cosine":
        return [math.sin(math.pi / 2 * (n - 1 - i) / last) for i in range(n)]
    if name == "linear":
        return [i / last for i in range(n)]
    if name == "reverse_linear":
        return [(n - 1 - i) / last for i in range(n)]
    return [0.0] * n


def parse_block_weights(text: str, n: int) -> list[float] | None:
    """A weight list of length n from Kohya's text, or None when empty; ValueError if malformed."""
    text = text.strip()
    if not text:
        return None
    head, plus, offset_text = text.partition("+")
    if head.strip() in _CURVES:
        try:
            offset = float(offset_text) if plus else 0.0
        except ValueError:
            raise ValueError(f"{text!r}: the part after '+' must be a number, e.g. 'sine+0.5'") from None
        return [w + offset for w in _curve(head.strip(), n)]
    try:
        weights = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ValueError(
            f"{text!r} is neither {n} comma-separated numbers nor one of "
            f"{', '.join(_CURVES)} (with an optional '+offset')"
        ) from None
    if len(weights) > n:
        raise ValueError(f"{text!r} has {len(weights)} weights; this model has {n} blocks")
    if any(w < 0 or not math.isfinite(w) for w in weights):
        raise ValueError(f"{text!r}: weights must be numbers >= 0")
    return weights + [1.0] * (n - len(weights))


def parse_mid_weight(text: str) -> float | None:
    """The middle block's weight, or None when empty."""
    text = str(text).strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if value < 0 or not math.isfinite(value):
        raise ValueError(f"{text!r}: the weight must be a number >= 0")
    return value


def block_of(lora_name: str) -> tuple[str, int] | None:
    """("down" | "up", index) or ("mid", 0) of a U-Net LoRA module name; None if in no block.

    SD1/SD2 names are diffusers paths (3 blocks per level, as in the original U-Net);
    SDXL names are already the original (SGM) paths.
    """
    if not lora_name.startswith("lora_unet_"):
        return None
    m = _SGM.match(lora_name)
    if m:
        return ("down" if m.group(1) == "input_blocks" else "up", int(m.group(2)))
    if lora_name.startswith(("lora_unet_middle_block_", "lora_unet_mid_block_")):
        return ("mid", 0)
    m = _SD_UPDOWN.search(lora_name)
    if not m:
        return None
    side, level, kind, index = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
    offset = 2 if kind in ("upsamplers", "downsamplers") else index
    if side == "down":
        return ("down", 1 + 3 * level + offset)  # IN00 is conv_in
    return ("up", 3 * level + offset)


@dataclass(frozen=True)
class BlockWeights:
    """Parsed block weights; `weight(name)` is the learning-rate multiplier of one module."""

    down: list[float] | None
    mid: float | None
    up: list[float] | None
    zero_threshold: float = 0.0

    @classmethod
    def parse(cls, down: str, mid: str, up: str, zero_threshold: float, arch: str) -> BlockWeights | None:
        """None when no weight is set (every block learns at the plain rate)."""
        n = block_count(arch)
        parsed = cls(
            parse_block_weights(down, n), parse_mid_weight(mid), parse_block_weights(up, n), zero_threshold
        )
        if parsed.down is None and parsed.mid is None and parsed.up is None:
            return None
        return parsed

    def weight(self, lora_name: str) -> float:
        where = block_of(lora_name)
        if where is None:
            return 1.0
        side, index = where
        if side == "mid":
            w = self.mid
        else:
            weights = self.down if side == "down" else self.up
            w = weights[index] if weights is not None and index < len(weights) else None
        if w is None:
            return 1.0
        return 0.0 if w <= self.zero_threshold else w


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
    def from_settings(
        cls,
        texts: dict[str, str],
        *,
        arch: str,
        rank: int,
        alpha: float,
        conv_rank: int,
        conv_alpha: float,
        lr_weights: BlockWeights | None,
    ) -> BlockDims | None:
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
