"""Kohya LoRA names, and the diffusers -> SGM U-Net path mapping that SDXL files use.

sd-scripts trains SDXL on the original Stability (SGM / LDM) U-Net, so SDXL LoRA files
name U-Net modules by that layout (``input_blocks.4.1.transformer_blocks.0.attn1.to_q``)
while SD1/SD2 files use diffusers paths. We train on the diffusers U-Net and translate its
paths when naming. The translation is derived from the U-Net config rather than written
down for one size, so it holds for the tiny test U-Nets as well as for real SDXL:

- ``input_blocks.0`` is conv_in. Down block b then owns one input block per ResNet
  (``.0`` = the ResNet, ``.1`` = its transformer, if the block has attention), followed by
  one input block for its downsampler (``.0.op``) unless it is the last block.
- ``middle_block`` is ResNet (0), transformer (1), ResNet (2).
- Up block b owns one output block per ResNet (``layers_per_block + 1`` of them); the
  upsampler sits inside the last one, after the ResNet and transformer (``.2.conv``, or
  ``.1.conv`` when the block has no attention).

This module is pure Python (no torch), so it is cheap to import and test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

UNET_PREFIX = "lora_unet_"
TE_PREFIX = "lora_te_"
TE1_PREFIX = "lora_te1_"
TE2_PREFIX = "lora_te2_"
KOHYA_PREFIXES = (UNET_PREFIX, TE_PREFIX, TE1_PREFIX, TE2_PREFIX)

# ResnetBlock2D child -> SGM ResBlock child.
_RESNET_TO_SGM = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
# Modules outside the down / mid / up blocks.
_TOP_LEVEL_TO_SGM = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def kohya_name(prefix: str, path: str) -> str:
    """Kohya's module name: the prefix plus the module path with "." replaced by "_"."""
    return prefix + path.replace(".", "_")


def _per_block(layers_per_block: int | Sequence[int], n_blocks: int) -> list[int]:
    if isinstance(layers_per_block, int):
        return [layers_per_block] * n_blocks
    layers = [int(n) for n in layers_per_block]
    if len(layers) != n_blocks:
        raise ValueError(f"layers_per_block has {len(layers)} entries for {n_blocks} blocks")
    return layers


@dataclass(frozen=True)
class SgmLayout:
    """Where each diffusers down / up block starts in the SGM input / output blocks."""

    down_starts: tuple[int, ...]
    down_layers: tuple[int, ...]
    up_starts: tuple[int, ...]
    up_layers: tuple[int, ...]
    up_has_attention: tuple[bool, ...]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SgmLayout:
        """Build the layout from a ``UNet2DConditionModel`` config (dict or FrozenDict)."""
        down_types = list(config["down_block_types"])
        up_types = list(config["up_block_types"])
        down_layers = _per_block(config["layers_per_block"], len(down_types))
        # diffusers gives up block i (counted from the bottom) reversed(layers)[i] + 1 ResNets.
        up_layers = [n + 1 for n in reversed(down_layers)]

        down_starts, index = [], 1  # input_blocks.0 is conv_in
        for b, n in enumerate(down_layers):
            down_starts.append(index)
            index += n + (1 if b < len(down_layers) - 1 else 0)
        up_starts, index = [], 0
        for n in up_layers:
            up_starts.append(index)
            index += n
        return cls(
            down_starts=tuple(down_starts),
            down_layers=tuple(down_layers),
            up_starts=tuple(up_starts),
            up_layers=tuple(up_layers),
            up_has_attention=tuple("Attn" in t for t in up_types),
        )

    def to_sgm(self, path: str) -> str:
        """Translate one diffusers U-Net module path to its SGM path.

        >>> layout = SgmLayout.from_config({"layers_per_block": 2,
        ...     "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        ...     "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]})
        >>> layout.to_sgm("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q")
        'input_blocks.4.1.transformer_blocks.0.attn1.to_q'
        """
        for top, sgm in _TOP_LEVEL_TO_SGM.items():
            if path == top or path.startswith(top + "."):
                return sgm + path[len(top) :]
        parts = path.split(".")
        try:
            if parts[0] == "down_blocks":
                return self._down(int(parts[1]), parts[2], int(parts[3]), parts[4:])
            if parts[0] == "up_blocks":
                return self._up(int(parts[1]), parts[2], int(parts[3]), parts[4:])
            if parts[0] == "mid_block":
                return self._mid(parts[1], int(parts[2]), parts[3:])
        except (IndexError, ValueError, KeyError) as exc:
            raise ValueError(f"no SGM name for U-Net module {path!r}: {exc}") from exc
        raise ValueError(f"no SGM name for U-Net module {path!r}")

    def _down(self, b: int, kind: str, j: int, rest: list[str]) -> str:
        start, n = self.down_starts[b], self.down_layers[b]
        if kind == "resnets":
            return _join(f"input_blocks.{start + j}.0", _resnet_child(rest))
        if kind == "attentions":
            return _join(f"input_blocks.{start + j}.1", rest)
        if kind == "downsamplers" and j == 0 and b < len(self.down_starts) - 1:
            return _join(f"input_blocks.{start + n}.0", ["op" if p == "conv" else p for p in rest])
        raise ValueError(f"unknown part {kind}.{j} of down block {b}")

    def _up(self, b: int, kind: str, j: int, rest: list[str]) -> str:
        start, n = self.up_starts[b], self.up_layers[b]
        if kind == "resnets":
            return _join(f"output_blocks.{start + j}.0", _resnet_child(rest))
        if kind == "attentions":
            return _join(f"output_blocks.{start + j}.1", rest)
        if kind == "upsamplers" and j == 0 and b < len(self.up_starts) - 1:
            inner = 2 if self.up_has_attention[b] else 1
            return _join(f"output_blocks.{start + n - 1}.{inner}", rest)
        raise ValueError(f"unknown part {kind}.{j} of up block {b}")

    @staticmethod
    def _mid(kind: str, j: int, rest: list[str]) -> str:
        if kind == "resnets" and j in (0, 1):
            return _join(f"middle_block.{2 * j}", _resnet_child(rest))
        if kind == "attentions" and j == 0:
            return _join("middle_block.1", rest)
        raise ValueError(f"unknown part {kind}.{j} of the middle block")


def _resnet_child(rest: list[str]) -> list[str]:
    if not rest:
        return rest
    return _RESNET_TO_SGM[rest[0]].split(".") + rest[1:]


def _join(head: str, rest: list[str]) -> str:
    return ".".join([head, *rest]) if rest else head
