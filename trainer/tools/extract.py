"""extract: the LoRA that best approximates a fine-tuned model's difference from its base.

For every layer a LoRA would train (with --conv_dim also the ResNet and sampler convs,
LoCon), ``tuned - base`` is decomposed by SVD and its first --dim (--conv_dim for 3x3
convs) singular values kept, alpha = rank (sd-scripts' extract_lora_from_models.py).
--clamp_quantile (default 0.99, as there) clips the factors' extreme entries. A text
encoder that differs by less than --min_diff everywhere was not trained and is left out.
Works on SD1.x / SD2.x / SDXL, diffusers folders, single files and cached Hugging Face ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

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
    load_base,
    write_lora,
)


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
    from trainer.network import find_targets

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

    flags = {"v2": v2, "sdxl": sdxl, "v_parameterization": v_parameterization, "dtype": load_dtype}
    base = load_base(org, "--model_org", **flags)
    other = load_base(tuned, "--model_tuned", **flags)
    if base.arch != other.arch:
        raise ToolError(
            f"--model_org is {base.arch} but --model_tuned is {other.arch}; give two models of one family."
        )
    conv = bool(conv_dim)
    base_unet, base_te = find_targets(base.unet, base.text_encoders, arch=base.arch, conv=conv)
    tuned_unet, tuned_te = find_targets(other.unet, other.text_encoders, arch=other.arch, conv=conv)
    tuned_layers = dict(tuned_unet + tuned_te)
    mismatch = [
        n
        for n, m in base_unet + base_te
        if n not in tuned_layers or tuned_layers[n].weight.shape != m.weight.shape
    ]
    if mismatch:
        raise ToolError(
            f"--model_tuned {tuned} is not a fine-tune of --model_org {org}: layer {mismatch[0]} "
            "differs in shape or is missing."
        )

    lines: list[str] = []
    with torch.no_grad():
        diffs = [float((tuned_layers[n].weight.float() - m.weight.float()).abs().max()) for n, m in base_te]
    te_diff = max(diffs, default=0.0)
    targets = base_unet + base_te
    if te_diff < min_diff:
        targets = base_unet
        lines.append(f"text encoder: largest difference {te_diff:.3g} < --min_diff {min_diff}; U-Net only")

    tensors: dict = {}
    retained: list[float] = []
    with torch.no_grad():
        for name, layer in each(targets, "extract", total=len(targets), show=progress):
            diff = tuned_layers[name].weight.to(dev, torch.float32) - layer.weight.to(dev, torch.float32)
            shape = tuple(diff.shape)
            is_conv3 = len(shape) == 4 and shape[2:] != (1, 1)
            rank = min(conv_dim if is_conv3 and conv_dim else dim, shape[0], diff[0].numel())
            svd = svd_of_matrix(diff)
            retained.append(svd.retention(rank))
            a, b = clamp(*svd.factors(rank), clamp_quantile)
            tensors.update(pieces(name, a.cpu(), b.cpu(), shape, float(rank)))

    metadata: dict[str, str] = {}
    if not no_metadata:
        metadata = arch_metadata(base.arch, base.v_parameterization)
        metadata.update({"ss_network_dim": str(dim), "ss_network_alpha": str(float(dim))})
        args = {"conv_dim": str(conv_dim), "conv_alpha": str(float(conv_dim))} if conv else {}
        metadata["ss_network_args"] = json.dumps(args)
        metadata["ss_sd_model_name"] = Path(org).name
        metadata["ss_training_comment"] = f"extracted from {Path(tuned).name} - {Path(org).name} (dim {dim})"
    write_lora(out_path, tensors, metadata, dtype)
    mean = sum(retained) / max(1, len(retained))
    lines.append(
        f"extracted {len(retained)} modules ({base.arch}) at dim {dim}"
        + (f", conv_dim {conv_dim}" if conv else "")
        + f"; Frobenius norm of the difference kept: mean {mean:.1%}, lowest {min(retained, default=1.0):.1%}"
    )
    lines.append(f"saved {out_path}")
    return ToolResult(out_path, lines, {"modules": len(retained), "arch": base.arch, "mean_retention": mean})
