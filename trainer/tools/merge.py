"""merge: several LoRAs into one (their ranks side by side, or SVD to a new rank).

The merged change of a module is the weighted sum of the inputs' changes,
``sum_i ratio_i * alpha_i/rank_i * up_i @ down_i``. `--concat` stores that sum exactly:
the factors are put side by side (rank = the sum of the ranks), each input's scale split
evenly between its up and down, alpha = rank. `--new_rank R` (svd_merge_lora.py) keeps
the best rank-R approximation of the sum instead (`--new_conv_rank` for 3x3 convs).
A module present in only some files is the sum of those. Baking into a base model is
bake.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor

from trainer.tools.lora_io import LoraFile, Module, ToolError, add_comment, pieces
from trainer.tools.lowrank import svd_of_product
from trainer.tools.outputs import ToolResult, check_device, check_precision, check_save_to, each, write_lora

# Metadata that says what the LoRA is for, taken from the first file that has it.
_KEPT = (
    "ss_base_model_version", "ss_v2", "ss_sd_model_name", "ss_network_module", "modelspec.architecture",
    "modelspec.implementation", "modelspec.prediction_type", "modelspec.resolution",
    "modelspec.sai_model_spec", "ss_resolution", "ss_clip_skip",
)  # fmt: skip


def open_inputs(models: list[str], ratios: list[float] | None) -> tuple[list[LoraFile], list[float]]:
    """The LoRA files and one ratio each (1.0 when --ratios is not given)."""
    if not models:
        raise ToolError("--models is missing; give one or more LoRA .safetensors files.")
    if ratios is None or len(ratios) == 0:
        ratios = [1.0] * len(models)
    if len(ratios) != len(models):
        raise ToolError(f"--ratios has {len(ratios)} values for {len(models)} --models; give one per model.")
    bad = [r for r in ratios if not math.isfinite(r)]
    if bad:
        raise ToolError(f"--ratios {bad[0]} is not a finite number.")
    files = [LoraFile(m, what="--models") for m in models]
    for lora in files:
        lora.check_lora()
    return files, [float(r) for r in ratios]


def module_names(files: list[LoraFile]) -> list[str]:
    names: dict[str, None] = {}
    for lora in files:
        names.update(dict.fromkeys(lora.groups))
    return list(names)


def stacked_factors(
    files: list[LoraFile], ratios: list[float], name: str
) -> tuple[Tensor, Tensor, tuple, bool]:
    """(A, B, weight shape, is 3x3 conv): ``A @ B`` = the weighted sum of the files' changes."""
    ups, downs, shape, conv3 = [], [], None, False
    for lora, ratio in zip(files, ratios, strict=True):
        if name not in lora.groups:
            continue
        module: Module = lora.module(name)
        if shape is not None and module.weight_shape != shape:
            raise ToolError(
                f"--models {lora.path}: module {name} has shape {module.weight_shape}, another file "
                f"{shape}; these LoRAs are for different models and cannot be merged."
            )
        shape, conv3 = module.weight_shape, module.is_conv3x3
        a, b = module.factors()
        root = math.sqrt(abs(ratio))  # each side gets the square root of |ratio|
        ups.append(a * (root if ratio >= 0 else -root))
        downs.append(b * root)
    return torch.cat(ups, dim=1), torch.cat(downs, dim=0), shape, conv3


def _balanced(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Rescale each rank so that its up and down columns have equal norms (same product)."""
    na, nb = a.norm(dim=0), b.norm(dim=1)
    factor = torch.where((na > 0) & (nb > 0), (nb / na.clamp(min=1e-30)).sqrt(), torch.ones_like(na))
    return a * factor, b / factor[:, None]


def merge_loras(
    models: list[str],
    save_to: str | Path,
    *,
    ratios: list[float] | None = None,
    concat: bool = False,
    new_rank: int | None = None,
    new_conv_rank: int | None = None,
    save_precision: str | None = None,
    device: str | None = "cpu",
    progress: bool = True,
) -> ToolResult:
    """Merge `models` (weighted by `ratios`) into one LoRA at `save_to`.

    Without --new_rank the ranks are concatenated (exact), whether or not --concat is given.
    """
    if concat and new_rank:
        raise ToolError("--concat and --new_rank exclude each other: concat keeps every rank exactly.")
    for option, value in (("--new_rank", new_rank), ("--new_conv_rank", new_conv_rank)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ToolError(f"{option} {value!r} must be a whole number of 1 or more.")
    dtype = check_precision(save_precision)
    dev = check_device(device)
    files, ratios = open_inputs(models, ratios)
    out_path = check_save_to(save_to, inputs=[f.path for f in files])
    dtype = dtype or check_precision(files[0].main_dtype())

    names = module_names(files)
    tensors: dict = {}
    ranks: set[int] = set()
    retained: list[float] = []
    for name in each(names, "merge", total=len(names), show=progress):
        a, b, shape, conv3 = stacked_factors(files, ratios, name)
        if new_rank:
            svd = svd_of_product(a.to(dev), b.to(dev))
            rank = min((new_conv_rank or new_rank) if conv3 else new_rank, int(svd.s.numel()))
            retained.append(svd.retention(rank))
            a, b = (t.cpu() for t in svd.factors(rank))
        else:
            a, b = _balanced(a, b)
        rank = int(a.shape[1])
        ranks.add(rank)
        tensors.update(pieces(name, a, b, shape, float(rank)))

    metadata = {k: files[0].metadata[k] for k in _KEPT if k in files[0].metadata}
    metadata.setdefault("ss_network_module", "networks.lora")
    dim = str(next(iter(ranks))) if len(ranks) == 1 else "Dynamic"
    metadata.update({"ss_network_dim": dim, "ss_network_alpha": dim if dim == "Dynamic" else f"{float(dim)}"})
    merged_from = [f.path.name for f in files]
    metadata["ss_merged_from"] = ", ".join(merged_from)
    metadata["ss_network_args"] = json.dumps({})
    how = f"SVD to rank {new_rank}" if new_rank else "ranks concatenated"
    weighted = ", ".join(f"{n} x {r}" for n, r in zip(merged_from, ratios, strict=True))
    add_comment(metadata, f"merged from {weighted} ({how})")
    write_lora(out_path, tensors, metadata, dtype)

    lines = [f"merged {len(files)} LoRAs, {len(names)} modules ({how}); ranks {sorted(ranks)}"]
    if retained:
        mean = sum(retained) / len(retained)
        lines.append(f"Frobenius norm retained: mean {mean:.1%}, lowest {min(retained):.1%}")
    lines.append(f"saved {out_path}")
    return ToolResult(out_path, lines, {"modules": len(names), "ranks": sorted(ranks)})
