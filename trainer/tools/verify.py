"""verify: what a LoRA file holds, read from its header (no tensor is loaded but alphas).

Architecture (from the metadata, else from the key names and widths), module counts by
part (text encoder, U-Net, of which 3x3 conv / LoCon), ranks and alphas, precision, size,
the metadata in readable form (training settings, dataset tag frequencies), and whether
every key follows sd-scripts' naming (docs/ANCHORS.md section 6).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from trainer.tools.lora_io import KOHYA_PREFIXES, LORA_SUFFIXES, OTHER_ALGOS, LoraFile, split_key
from trainer.tools.outputs import ToolResult, size_text

ARCHS = {"sd_v1": "SD 1.x", "sd_v2": "SD 2.x", "sd_v2_v": "SD 2.x (768-v)", "sdxl_base_v1-0": "SDXL"}
# Settings worth a line of their own, in this order.
SETTINGS = (
    "ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_network_args", "ss_sd_model_name",
    "ss_base_model_version", "ss_resolution", "ss_num_train_images", "ss_num_epochs", "ss_steps",
    "ss_batch_size_per_device", "ss_learning_rate", "ss_unet_lr", "ss_text_encoder_lr", "ss_optimizer",
    "ss_lr_scheduler", "ss_mixed_precision", "ss_clip_skip", "ss_seed", "ss_training_comment",
)  # fmt: skip
_SGM = ("lora_unet_input_blocks_", "lora_unet_middle_block_", "lora_unet_output_blocks_")


def _architecture(lora: LoraFile) -> str:
    meta = lora.metadata
    if meta.get("ss_base_model_version") in ARCHS:
        return ARCHS[meta["ss_base_model_version"]]
    arch = meta.get("modelspec.architecture", "")
    if arch:
        return "SDXL" if "-xl-" in arch else ("SD 2.x" if "-v2" in arch else "SD 1.x")
    names = lora.groups
    if any(n.startswith(("lora_te1_", "lora_te2_")) or n.startswith(_SGM) for n in names):
        return "SDXL"
    widths = {
        lora.shape(p["lora_down.weight"])[1]
        for n, p in names.items()
        if n.endswith("q_proj") and "lora_down.weight" in p
    }
    if widths == {768}:
        return "SD 1.x"
    if widths == {1024}:
        return "SD 2.x"
    return f"unknown (text encoder width {sorted(widths)})" if widths else "unknown"


def _naming_problems(lora: LoraFile) -> list[str]:
    problems = []
    for key in lora.keys:
        name, suffix = split_key(key)
        if not key.startswith(KOHYA_PREFIXES):
            problems.append(f"{key}: does not start with lora_unet_ / lora_te_ / lora_te1_ / lora_te2_")
        elif suffix not in LORA_SUFFIXES and not any(m in suffix for m in OTHER_ALGOS):
            problems.append(f"{key}: unknown part {suffix!r}")
    for name, parts in lora.groups.items():
        if "lora_down.weight" in parts and "lora_up.weight" not in parts:
            problems.append(f"{name}: lora_down without lora_up")
        if "lora_down.weight" in parts and "alpha" not in parts:
            problems.append(f"{name}: no alpha (read as alpha = rank)")
    return problems


def _algorithm(lora: LoraFile) -> str:
    for marker, algo in OTHER_ALGOS.items():
        if any(marker in k for k in lora.keys):
            return algo
    conv = any(len(lora.shape(p["lora_down.weight"])) == 4 and lora.shape(p["lora_down.weight"])[2:] != (1, 1)
               for p in lora.groups.values() if "lora_down.weight" in p)  # fmt: skip
    return "LoCon (LoRA with 3x3 conv modules)" if conv else "LoRA"


def _readable(metadata: dict[str, str]) -> dict[str, Any]:
    """Metadata with JSON values parsed (tag frequencies, bucket info, network args)."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if value[:1] in "{[":
            try:
                out[key] = json.loads(value)
                continue
            except ValueError:
                pass
        out[key] = value
    return out


def _top_tags(frequency: Any, n: int = 10) -> dict[str, list[tuple[str, int]]]:
    if not isinstance(frequency, dict):
        return {}
    top = {}
    for folder, tags in frequency.items():
        if isinstance(tags, dict):
            counts = Counter({str(t): int(c) for t, c in tags.items() if str(c).isdigit()})
            top[folder] = counts.most_common(n)
    return top


def inspect_lora(path: str | Path) -> dict[str, Any]:
    """Everything `verify` reports, as one JSON-ready dict (`modules` = module count)."""
    lora = LoraFile(path, what="FILE")
    modules = [n for n, p in lora.groups.items() if "alpha" in p or "lora_down.weight" in p or len(p) > 1]
    te = [n for n in modules if n.startswith(("lora_te_", "lora_te1_", "lora_te2_"))]
    unet = [n for n in modules if n.startswith("lora_unet_")]
    ranks: Counter[int] = Counter()
    alphas: Counter[float] = Counter()
    conv = 0
    for name in modules:
        parts = lora.groups[name]
        if "lora_down.weight" in parts:
            shape = lora.shape(parts["lora_down.weight"])
            ranks[shape[0]] += 1
            conv += len(shape) == 4 and (shape[2:] != (1, 1) or "lora_mid.weight" in parts)
        if "alpha" in parts:
            alphas[round(float(lora.tensor(parts["alpha"]).float()), 6)] += 1
    metadata = _readable(lora.metadata)
    problems = _naming_problems(lora)
    return {
        "file": str(lora.path),
        "size_bytes": lora.path.stat().st_size,
        "architecture": _architecture(lora),
        "algorithm": _algorithm(lora),
        "modules": len(modules),
        "modules_by_part": {"text_encoder": len(te), "unet": len(unet), "conv": conv},
        "ranks": {str(r): c for r, c in sorted(ranks.items())},
        "alphas": {str(a): c for a, c in sorted(alphas.items())},
        "precision": dict(Counter(lora.dtype(k) for k in lora.keys if not k.endswith(".alpha"))),
        "tensors": len(lora.keys),
        "kohya_names": not problems,
        "naming_problems": problems[:20],
        "tag_frequency_top": _top_tags(metadata.get("ss_tag_frequency")),
        "metadata": metadata,
    }


def verify_lora(path: str | Path) -> ToolResult:
    """`inspect_lora` in lines for a person."""
    info = inspect_lora(path)
    parts = info["modules_by_part"]
    lines = [
        f"{info['file']} ({size_text(info['size_bytes'])}, {info['tensors']} tensors)",
        f"architecture: {info['architecture']}; type: {info['algorithm']}",
        f"modules: {info['modules']} (text encoder {parts['text_encoder']}, U-Net {parts['unet']}, "
        f"of which 3x3 conv {parts['conv']})",
        "ranks: " + ", ".join(f"{r} x{c}" for r, c in info["ranks"].items()),
        "alphas: " + ", ".join(f"{a} x{c}" for a, c in info["alphas"].items()),
        "precision: " + ", ".join(f"{d} x{c}" for d, c in info["precision"].items()),
    ]
    if info["kohya_names"]:
        lines.append("key names: every key follows sd-scripts' naming")
    else:
        lines.append(f"key names: {len(info['naming_problems'])} problem(s), e.g.")
        lines += [f"  {p}" for p in info["naming_problems"][:5]]
    meta = info["metadata"]
    shown = [k for k in SETTINGS if k in meta]
    if shown:
        lines.append("training settings:")
        lines += [
            f"  {k[3:]}: {json.dumps(meta[k]) if isinstance(meta[k], dict) else meta[k]}" for k in shown
        ]
    for folder, tags in info["tag_frequency_top"].items():
        lines.append(f"top tags in {folder}: " + ", ".join(f"{t} ({c})" for t, c in tags))
    others = sorted(k for k in meta if k not in SETTINGS and k != "ss_tag_frequency")
    if others:
        more = ", ..." if len(others) > 8 else ""
        lines.append(f"other metadata: {len(others)} keys ({', '.join(others[:8])}{more})")
    if not meta:
        lines.append("metadata: none")
    return ToolResult(path=None, lines=lines, facts=info)
