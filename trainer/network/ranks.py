"""Rank and alpha of each LoRA module: one for all, per U-Net block, or as in a LoRA file.

- plain: Linear and 1x1 convs get `rank`/`alpha`, 3x3 convs `conv_rank`/`conv_alpha`
  (conv_rank 0 = no 3x3 modules: Standard LoRA).
- per block (`block_dims` ...): see :mod:`trainer.config.rules.blocks`; the text encoder keeps the
  plain rank.
- from a file (`dim_from_weights`): every module the file has, with the file's rank
  (rows of ``lora_down``) and alpha (its rank when the file has none, as old LoRAs);
  no module where the file has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

from trainer.config.rules.blocks import BlockDims


@dataclass(frozen=True)
class RankPlan:
    """`of(name, is_3x3)` -> (rank, alpha) of one module; rank 0 leaves it out."""

    rank: int
    alpha: float
    conv_rank: int = 0
    conv_alpha: float = 0.0
    blocks: BlockDims | None = None
    from_file: dict[str, tuple[int, float]] | None = None

    @property
    def conv(self) -> bool:
        """Whether the U-Net's ResNet and sampler layers are looked at (LoCon targets)."""
        if self.from_file is not None:
            return True
        if self.blocks is not None:
            return self.blocks.conv
        return self.conv_rank > 0

    def of(self, name: str, is_3x3: bool) -> tuple[int, float]:
        if self.from_file is not None:
            return self.from_file.get(name, (0, 0.0))
        if self.blocks is not None and name.startswith("lora_unet_"):
            return self.blocks.of(name, is_3x3)
        return (self.conv_rank, self.conv_alpha) if is_3x3 else (self.rank, self.alpha)


def ranks_from_file(path: str | PathLike) -> dict[str, tuple[int, float]]:
    """{module name: (rank, alpha)} of a Kohya LoRA file; ValueError if it holds no LoRA."""
    from safetensors import safe_open

    ranks: dict[str, int] = {}
    alphas: dict[str, float] = {}
    with safe_open(str(path), framework="pt") as f:
        for key in list(f.keys()):  # safe_open is not iterable itself
            name, _, rest = key.partition(".")
            if rest == "lora_down.weight":
                ranks[name] = int(f.get_slice(key).get_shape()[0])
            elif rest == "alpha":
                alphas[name] = float(f.get_tensor(key))
    if not ranks:
        raise ValueError(
            f"{path} holds no LoRA modules (no '.lora_down.weight' keys): "
            "dim_from_weights reads Standard / Kohya LoCon LoRA files"
        )
    return {name: (rank, alphas.get(name, float(rank))) for name, rank in ranks.items()}
