"""extract: the LoRA that best approximates a fine-tuned model's difference from its base.

For every layer a LoRA would train (with --conv_dim also the ResNet and sampler convs,
LoCon), ``tuned - base`` is decomposed by SVD and its first --dim (--conv_dim for 3x3
convs) singular values kept, alpha = rank (sd-scripts' extract_lora_from_models.py).
--clamp_quantile (default 0.99, as there) clips the factors' extreme entries. A text
encoder that differs by less than --min_diff everywhere was not trained and is left out.
Works on SD1.x / SD2.x / SDXL, diffusers folders, single files and cached Hugging Face ids;
both models are read one layer at a time (weights.py), never loaded whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from trainer.tools.lora_io import ToolError, pieces
from trainer.tools.lowrank import clamp_quantile as clamp
from trainer.tools.lowrank import svd_of_matrix
from trainer.tools.outputs import (
    ToolResult,
    arch_metadata,
    check_device,
    check_model_path,
    check_precision,
    check_save_to,
    each,
    write_lora,
)
from trainer.tools.weights import LazyModel, open_weights


def extract_lora(
    model_org: str,
    model_tuned: str,
    save_to: str | Path,
    *,
    dim: int = 4,
    conv_dim: int | None = None,
    save_precision: str | None = "fp16",
    load_precision: str | None = "float",
    device: str | None = "cpu",
    clamp_quantile: float = 0.99,
    min_diff: float = 0.01,
    v2: bool = False,
    sdxl: bool = False,
    v_parameterization: bool = False,
    no_metadata: bool = False,
    progress: bool = True,
) -> ToolResult:
    """Extract the LoRA of `model_tuned` - `model_org` into `save_to`."""
    for option, value in (("--dim", dim), ("--conv_dim", conv_dim)):
        if value is not None and (not isinstance(value, int) or value < (1 if option == "--dim" else 0)):
            raise ToolError(f"{option} {value!r} must be a whole number of 1 or more.")
    if not 0 < clamp_quantile <= 1:
        raise ToolError(f"--clamp_quantile {clamp_quantile} must be in (0, 1]; 1 clips nothing.")
    if min_diff < 0:
        raise ToolError(f"--min_diff {min_diff} must be 0 or more.")
    dtype = check_precision(save_precision) or torch.float16
    load_dtype = check_precision(load_precision, "--load_precision") or torch.float32
    dev = check_device(device)
    org = check_model_path(model_org, "--model_org")
    tuned = check_model_path(model_tuned, "--model_tuned")
    out_path = check_save_to(save_to)

    with open_weights(org, "--model_org") as base, open_weights(tuned, "--model_tuned") as other:
        _check_models(base, other, org, tuned, v2=v2, sdxl=sdxl)
        lines, tensors, retained = _extract(
            base, other, dim, conv_dim, min_diff, clamp_quantile, dev, load_dtype, progress
        )
    v_param = v_parameterization or base.v_parameterization
    conv = bool(conv_dim)

    metadata: dict[str, str] = {}
    if not no_metadata:
        metadata = arch_metadata(base.arch, v_param)
        metadata.update({"ss_network_dim": str(dim), "ss_network_alpha": str(float(dim))})
        args = {"conv_dim": str(conv_dim), "conv_alpha": str(float(conv_dim))} if conv else {}
        metadata["ss_network_args"] = json.dumps(args)
        metadata["ss_sd_model_name"] = Path(org).name
        metadata["ss_training_comment"] = f"extracted from {Path(tuned).name} - {Path(org).name} (dim {dim})"
    write_lora(out_path, tensors, metadata, dtype)
    mean = sum(retained) / max(1, len(retained))
    lowest = min(retained, default=1.0)
    lines.append(
        f"extracted {len(retained)} modules ({base.arch}) at dim {dim}"
        + (f", conv_dim {conv_dim}" if conv else "")
        + f"; Frobenius norm of the difference kept: mean {mean:.1%}, lowest {lowest:.1%}"
    )
    lines.append(f"saved {out_path}")
    return ToolResult(out_path, lines, {"modules": len(retained), "arch": base.arch, "mean_retention": mean})


def _check_models(base: LazyModel, other: LazyModel, org: str, tuned: str, *, v2: bool, sdxl: bool) -> None:
    """The two models are of one family, the one the flags say, with the same layers."""
    if base.arch != other.arch:
        raise ToolError(
            f"--model_org is {base.arch} but --model_tuned is {other.arch}; give two models of one family."
        )
    if (v2 and base.arch != "sd2") or (sdxl and base.arch != "sdxl"):
        flag = "--v2" if v2 else "--sdxl"
        raise ToolError(f"{flag} is given but --model_org {org} is {base.arch}; leave the flag out.")
    shapes = {name: tuple(m.weight.shape) for name, m in _targets(other, conv=True)}
    for name, layer in _targets(base, conv=True):
        if shapes.get(name) != tuple(layer.weight.shape):
            raise ToolError(
                f"--model_tuned {tuned} is not a fine-tune of --model_org {org}: layer {name} "
                "differs in shape or is missing."
            )


def _targets(model: LazyModel, conv: bool) -> list:
    from trainer.network import find_targets

    unet, te = find_targets(model.unet, model.text_encoders, arch=model.arch, conv=conv)
    return unet + te


def _extract(
    base: LazyModel, other: LazyModel, dim: int, conv_dim: int | None, min_diff: float, quantile: float,
    dev: torch.device, load_dtype: torch.dtype, progress: bool,
) -> tuple[list[str], dict, list[float]]:  # fmt: skip
    """(report lines, the LoRA's tensors, retention per module), one layer at a time."""
    tuned = dict(_targets(other, conv=bool(conv_dim)))
    targets = _targets(base, conv=bool(conv_dim))

    def diff(name: str, layer: nn.Module) -> Tensor:
        before = base.weight(layer).to(load_dtype).to(dev, torch.float32)
        return other.weight(tuned[name]).to(load_dtype).to(dev, torch.float32) - before

    lines: list[str] = []
    text = [(n, m) for n, m in targets if n.startswith(("lora_te_", "lora_te1_", "lora_te2_"))]
    te_diff = max((float(diff(n, m).abs().max()) for n, m in text), default=0.0)
    if te_diff < min_diff:
        names = {n for n, _ in text}
        targets = [(n, m) for n, m in targets if n not in names]
        lines.append(f"text encoder: largest difference {te_diff:.3g} < --min_diff {min_diff}; U-Net only")
    tensors: dict = {}
    retained: list[float] = []
    for name, layer in each(targets, "extract", total=len(targets), show=progress):
        change = diff(name, layer)
        shape = tuple(change.shape)
        is_conv3 = len(shape) == 4 and shape[2:] != (1, 1)
        rank = min(conv_dim if is_conv3 and conv_dim else dim, shape[0], change[0].numel())
        svd = svd_of_matrix(change)
        retained.append(svd.retention(rank))
        a, b = clamp(*svd.factors(rank), quantile)
        tensors.update(pieces(name, a.cpu(), b.cpu(), shape, float(rank)))
    return lines, tensors, retained
