"""Kohya's block-wise learning-rate weights (down_lr_weight / mid_lr_weight / up_lr_weight).

Pure Python (no torch): parsed and checked by the config check and the dry-run plan.

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
        raise ValueError(f"{text!r} is neither {n} comma-separated numbers nor one of "
                         f"{', '.join(_CURVES)} (with an optional '+offset')") from None
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
        parsed = cls(parse_block_weights(down, n), parse_mid_weight(mid),
                     parse_block_weights(up, n), zero_threshold)
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
