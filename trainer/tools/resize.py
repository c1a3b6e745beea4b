"""resize: a LoRA at a lower (or dynamic) rank, the best approximation of each module.

Per module (conv and LoCon modules too) the change ``alpha/rank * up @ down`` is
decomposed (lowrank.svd_of_product) and its first r singular values kept. Alpha is set
so that alpha/rank stays what it was: the effective scale, hence the strength at weight
1.0, does not change. The metadata says the new ss_network_dim / ss_network_alpha
("Dynamic" when the rank differs per module, as sd-scripts writes) and notes the resize
in ss_training_comment.
"""

from __future__ import annotations

import json
from pathlib import Path

from trainer.tools.lora_io import LoraFile, ToolError, add_comment, kept_metadata, pieces
from trainer.tools.lowrank import DYNAMIC_METHODS, dynamic_rank, svd_of_product
from trainer.tools.outputs import ToolResult, check_device, check_precision, check_save_to, each, write_lora


def check_dynamic(method: str | None, param: float | None) -> None:
    if method in (None, ""):
        return
    if method not in DYNAMIC_METHODS:
        raise ToolError(f"--dynamic_method {method!r} is not one of {', '.join(DYNAMIC_METHODS)}.")
    if param is None:
        raise ToolError(f"--dynamic_method {method} needs --dynamic_param (e.g. 0.9, or 2 for sv_ratio).")
    if method == "sv_ratio" and not param >= 1:
        raise ToolError(f"--dynamic_param {param} for sv_ratio must be 1 or more (largest / smallest kept).")
    if method != "sv_ratio" and not 0 < param <= 1:
        raise ToolError(f"--dynamic_param {param} for {method} must be a fraction in (0, 1], e.g. 0.9.")


def resize_lora(
    model: str | Path,
    new_rank: int,
    save_to: str | Path,
    *,
    save_precision: str | None = None,
    new_conv_rank: int | None = None,
    dynamic_method: str | None = None,
    dynamic_param: float | None = None,
    device: str | None = "cpu",
    verbose: bool = False,
    progress: bool = True,
) -> ToolResult:
    """Resize `model` to `new_rank` (the most per module with a dynamic method) into `save_to`."""
    if not isinstance(new_rank, int) or new_rank < 1:
        raise ToolError(f"--new_rank {new_rank!r} must be a whole number of 1 or more.")
    if new_conv_rank is not None and new_conv_rank < 1:
        raise ToolError(f"--new_conv_rank {new_conv_rank!r} must be a whole number of 1 or more.")
    check_dynamic(dynamic_method, dynamic_param)
    dtype = check_precision(save_precision)
    dev = check_device(device)
    lora = LoraFile(model)
    out_path = check_save_to(save_to, inputs=[lora.path])
    lora.check_lora()
    dtype = dtype or check_precision(lora.main_dtype())

    tensors: dict = {}
    result = ToolResult()
    ranks, conv_ranks, retained = set(), set(), []
    old_ranks = set()
    for module in each(lora.modules(), "resize", total=len(lora.groups), show=progress):
        limit = (new_conv_rank or new_rank) if module.is_conv3x3 else new_rank
        a, b = module.factors()
        svd = svd_of_product(a.to(dev), b.to(dev))
        rank = dynamic_rank(svd.s, dynamic_method or None, dynamic_param, limit)  # <= its own rank
        ratio = module.alpha / module.rank
        a_new, b_new = svd.factors(rank)
        tensors.update(pieces(module.name, a_new.cpu(), b_new.cpu(), module.weight_shape, ratio * rank))
        kept = svd.retention(rank)
        retained.append(kept)
        old_ranks.add(module.rank)
        (conv_ranks if module.is_conv3x3 else ranks).add(rank)
        if verbose:
            result.lines.append(f"{module.name}: rank {module.rank} -> {rank}, retained {kept:.1%}")

    metadata = kept_metadata(lora.metadata)
    dynamic = bool(dynamic_method) or len(ranks) > 1
    old_alpha = metadata.get("ss_network_alpha")
    metadata["ss_network_dim"] = "Dynamic" if dynamic else str(next(iter(ranks), new_rank))
    if dynamic:
        metadata["ss_network_alpha"] = "Dynamic"
    else:
        ratio = _alpha_ratio(lora)
        rank = next(iter(ranks), new_rank)
        metadata["ss_network_alpha"] = str(float(ratio * rank)) if ratio else str(old_alpha)
    if conv_ranks:
        args = lora.network_args()
        if len(conv_ranks) == 1 and not dynamic_method:
            args["conv_dim"] = str(next(iter(conv_ranks)))
            conv_ratio = _alpha_ratio(lora, conv=True)
            if conv_ratio:
                args["conv_alpha"] = str(conv_ratio * next(iter(conv_ranks)))
        metadata["ss_network_args"] = json.dumps(args)
    method = f", dynamic {dynamic_method} {dynamic_param}" if dynamic_method else ""
    old_dim = lora.metadata.get("ss_network_dim") or _ranks(old_ranks)
    add_comment(metadata, f"dimension is resized from {old_dim} to {new_rank}{method}")
    write_lora(out_path, tensors, metadata, dtype)

    mean = sum(retained) / max(1, len(retained))
    result.path = out_path
    result.lines[:0] = [  # the summary first, then each module (--verbose)
        f"resized {len(retained)} modules: rank {_ranks(old_ranks)} -> {_ranks(ranks | conv_ranks)}; "
        f"Frobenius norm retained: mean {mean:.1%}, lowest {min(retained, default=1.0):.1%}",
        f"saved {out_path}",
    ]
    lowest = min(retained, default=1.0)
    result.facts = {"modules": len(retained), "mean_retention": mean, "min_retention": lowest}
    return result


def _alpha_ratio(lora: LoraFile, conv: bool = False) -> float | None:
    """alpha / rank of the file's (conv) modules when all share one, else None."""
    ratios = set()
    for parts in lora.groups.values():
        shape = lora.shape(parts["lora_down.weight"])
        is_conv3x3 = len(shape) == 4 and (shape[2:] != (1, 1) or "lora_mid.weight" in parts)
        if is_conv3x3 != conv:
            continue
        alpha = float(lora.tensor(parts["alpha"]).float()) if "alpha" in parts else shape[0]
        ratios.add(round((alpha or shape[0]) / shape[0], 8))
    return ratios.pop() if len(ratios) == 1 else None


def _ranks(ranks: set[int]) -> str:
    if not ranks:
        return "0"
    return str(min(ranks)) if len(ranks) == 1 else f"{min(ranks)}-{max(ranks)}"
