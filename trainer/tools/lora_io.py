"""A Kohya-format LoRA file read one module at a time, and the low-rank pieces written back.

A module ``<name>`` has ``<name>.lora_down.weight`` (rank x in [x kh x kw]),
``<name>.lora_up.weight`` (out x rank [x 1 x 1]) and ``<name>.alpha``; LoCon files with
Tucker factors add ``<name>.lora_mid.weight`` (rank x rank x kh x kw, down and up are then
1x1). Its change to the layer's weight is ``alpha / rank * up @ down`` (docs/ANCHORS.md
section 5). Every tool works on that change as a product of two factors ``A @ B``
(`Module.factors`), so nothing bigger than one module's weight is ever built.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

# trainer.network.kohya_names.KOHYA_PREFIXES, spelled here because importing trainer.network
# loads diffusers (seconds), which reading a LoRA file does not need (a test keeps them equal).
KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")
LORA_SUFFIXES = ("lora_down.weight", "lora_up.weight", "alpha", "lora_mid.weight")
# Keys of LyCORIS algorithms other than LoRA / LoCon: their change is not a plain product.
OTHER_ALGOS = {"hada_": "LoHa", "lokr_": "LoKr", "on_input": "iA3", "dora_scale": "DoRA", "oft_": "OFT"}


class ToolError(ValueError):
    """A tool cannot do what was asked; the message says which file or option and what to do."""


@dataclass
class Module:
    """One LoRA module: its factors as stored and its alpha."""

    name: str
    down: Tensor
    up: Tensor
    alpha: float
    mid: Tensor | None = None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    @property
    def is_conv(self) -> bool:
        return self.down.dim() == 4

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """The shape of the layer weight this module changes."""
        out, ins = int(self.up.shape[0]), int(self.down.shape[1])
        if not self.is_conv:
            return (out, ins)
        kernel = self.mid.shape[2:] if self.mid is not None else self.down.shape[2:]
        return (out, ins, *(int(k) for k in kernel))

    @property
    def is_conv3x3(self) -> bool:
        """A LoCon module of a convolution larger than 1x1 (conv_dim applies to it)."""
        return len(self.weight_shape) == 4 and self.weight_shape[2:] != (1, 1)

    def factors(self, multiplier: float = 1.0) -> tuple[Tensor, Tensor]:
        """(A, B) in float32 with ``A @ B`` = multiplier * alpha/rank * up @ down, flattened."""
        up = self.up.float().reshape(self.up.shape[0], -1)
        down = self.down.float()
        if self.mid is not None:  # Tucker: W[o,i,h,w] = up[o,a] mid[a,b,h,w] down[b,i]
            down = torch.einsum("abhw,bi->aihw", self.mid.float(), down.reshape(down.shape[0], -1))
        down = down.reshape(down.shape[0], -1)
        return up * (multiplier * self.alpha / self.rank), down

    def delta(self, multiplier: float = 1.0) -> Tensor:
        """The change to the layer's weight, float32, in the weight's shape."""
        a, b = self.factors(multiplier)
        return (a @ b).reshape(self.weight_shape)


def pieces(name: str, a: Tensor, b: Tensor, shape: tuple[int, ...], alpha: float) -> dict[str, Tensor]:
    """The three tensors of a module whose change is ``a @ b`` with the given alpha.

    ``a``: out x r, ``b``: r x (in*kh*kw); rank r = a.shape[1] (at least 1).
    """
    rank = int(a.shape[1])
    up = a * (rank / alpha)
    if len(shape) == 4:
        down = b.reshape(rank, shape[1], shape[2], shape[3])
        up = up.reshape(shape[0], rank, 1, 1)
    else:
        down = b
    return {
        f"{name}.lora_down.weight": down.contiguous(),
        f"{name}.lora_up.weight": up.contiguous(),
        f"{name}.alpha": torch.tensor(float(alpha)),
    }


def split_key(key: str) -> tuple[str, str]:
    """'lora_unet_x.lora_up.weight' -> ('lora_unet_x', 'lora_up.weight')."""
    name, _, suffix = key.partition(".")
    return name, suffix


class LoraFile:
    """An open LoRA .safetensors file: its modules by name, read lazily, and its metadata."""

    def __init__(self, path: str | Path, what: str = "--model"):
        self.path = Path(path).expanduser()
        self.what = what
        if not self.path.is_file():
            raise ToolError(f"{what} {self.path} does not exist or is not a file; give a .safetensors file.")
        if self.path.suffix.lower() != ".safetensors":
            raise ToolError(f"{what} {self.path} is not a .safetensors file; LoRA files are .safetensors.")
        try:
            self._handle = safe_open(str(self.path), framework="pt")
            self.keys = list(self._handle.keys())  # noqa: SIM118 (not a dict)
            self.metadata = dict(self._handle.metadata() or {})
        except (SafetensorError, OSError) as err:
            raise ToolError(
                f"{what} {self.path} cannot be read ({err}); it is damaged or incomplete."
            ) from err
        self.groups: dict[str, dict[str, str]] = {}
        for key in self.keys:
            name, suffix = split_key(key)
            self.groups.setdefault(name, {})[suffix] = key

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._handle.get_slice(key).get_shape())

    def dtype(self, key: str) -> str:
        return str(self._handle.get_slice(key).get_dtype())

    def tensor(self, key: str) -> Tensor:
        return self._handle.get_tensor(key)

    def check_lora(self) -> None:
        """Refuse files that are not Kohya LoRA / LoCon, naming what they are instead."""
        if not self.keys:
            raise ToolError(f"{self.what} {self.path} holds no tensors.")
        for key in self.keys:
            for marker, algo in OTHER_ALGOS.items():
                if marker in key:
                    raise ToolError(
                        f"{self.what} {self.path} is a {algo} file ({key}); this tool handles LoRA and "
                        "LoCon (lora_down / lora_up) files only."
                    )
        odd = [
            k for k in self.keys if not k.startswith(KOHYA_PREFIXES) or split_key(k)[1] not in LORA_SUFFIXES
        ]
        if odd:
            raise ToolError(
                f"{self.what} {self.path} does not use sd-scripts' key names (e.g. {odd[0]}); "
                "expected lora_unet_* / lora_te_* keys with .lora_down.weight / .lora_up.weight / .alpha. "
                "Convert it with the tool that made it, or train it here."
            )
        needed = {"lora_down.weight", "lora_up.weight"}
        broken = [n for n, parts in self.groups.items() if not needed <= set(parts)]
        if broken:
            raise ToolError(
                f"{self.what} {self.path}: module {broken[0]} lacks lora_down or lora_up (damaged)."
            )

    def module(self, name: str) -> Module:
        parts = self.groups[name]
        down = self.tensor(parts["lora_down.weight"])
        alpha = float(self.tensor(parts["alpha"]).float()) if "alpha" in parts else float(down.shape[0])
        mid = self.tensor(parts["lora_mid.weight"]) if "lora_mid.weight" in parts else None
        return Module(name, down, self.tensor(parts["lora_up.weight"]), alpha or float(down.shape[0]), mid)

    def modules(self) -> Iterator[Module]:
        for name in self.groups:
            yield self.module(name)

    def network_args(self) -> dict:
        try:
            args = json.loads(self.metadata.get("ss_network_args") or "{}")
        except ValueError:
            return {}
        return args if isinstance(args, dict) else {}

    def main_dtype(self) -> str:
        """The precision most weights are stored in: 'fp16', 'bf16' or 'float'."""
        names = {"F16": "fp16", "BF16": "bf16", "F32": "float"}
        counts: dict[str, int] = {}
        for key in self.keys:
            if not key.endswith(".alpha"):
                kind = names.get(self.dtype(key), "float")
                counts[kind] = counts.get(kind, 0) + 1
        return max(counts, key=counts.__getitem__) if counts else "float"


def kept_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """A file's metadata without what a rewrite makes wrong (its hashes)."""
    return {k: v for k, v in metadata.items() if k not in ("sshs_model_hash", "sshs_legacy_hash")}


def add_comment(metadata: dict[str, str], note: str) -> None:
    """Put `note` first in ss_training_comment, as sd-scripts' resize does."""
    old = metadata.get("ss_training_comment", "")
    metadata["ss_training_comment"] = f"{note}; {old}" if old and old != "None" else note
