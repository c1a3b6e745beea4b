"""The diffusers configs for a single-file checkpoint, from our shipped ones and its shapes.

A single file holds weights but no config. The configs of the real SD 1.5, SD 2.x (512
and 768-v) and SDXL base models ship in `configs/` (written from the published numbers),
so loading needs no download. Fine-tunes keep those shapes; when a file's shapes differ
(a tiny test model, an unusual merge), every size that the weights reveal (widths, block
and layer counts, context width, SDXL's conditioning width) is read from the file. Two
numbers leave no trace in the weights, the attention head count and the GroupNorm group
count; for those the real models' rules apply (64-wide heads, 32 groups), reduced where
the widths do not divide.

Pure Python (shapes are tuples), no torch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from trainer.models.errors import ModelLoadError
from trainer.models.ldm_layout import SD2_DROPPED_LAYERS, TEXT_LAYOUTS

CONFIG_ROOT = Path(__file__).resolve().parent / "configs"
Shapes = dict[str, tuple[int, ...]]


def config_name(arch: str, v_parameterization: bool) -> str:
    """Which shipped config folder fits: sd15, sd2 (512, epsilon), sd2v (768-v) or sdxl."""
    if arch == "sd2":
        return "sd2v" if v_parameterization else "sd2"
    return {"sd1": "sd15", "sdxl": "sdxl"}[arch]


def shipped_config(name: str, component: str) -> dict[str, Any]:
    """One shipped JSON config, e.g. shipped_config("sdxl", "unet")."""
    folder = CONFIG_ROOT / name / component
    path = folder / "config.json"
    if component == "scheduler":
        path = folder / "scheduler_config.json"
    elif component.startswith("tokenizer"):
        path = folder / "tokenizer_config.json"
    return json.loads(path.read_text(encoding="utf-8"))


def derive_configs(arch: str, name: str, parts: dict[str, Shapes], shown: str) -> dict[str, dict]:
    """Configs for each component present in `parts` (component -> its shapes, prefix removed)."""
    try:
        configs: dict[str, dict] = {}
        for component, layout in TEXT_LAYOUTS[arch].items():
            base = shipped_config(name, component)
            derive = _clip_config if layout == "clip" else _open_clip_config
            dropped = SD2_DROPPED_LAYERS if arch == "sd2" else 0
            configs[component] = derive(base, parts[component], dropped)
        pooled = configs["text_encoder_2"].get("projection_dim") if arch == "sdxl" else None
        configs["unet"] = _unet_config(shipped_config(name, "unet"), parts["unet"], pooled)
        if parts.get("vae"):
            configs["vae"] = _vae_config(shipped_config(name, "vae"), parts["vae"])
        return configs
    except (KeyError, IndexError, ValueError) as err:
        raise ModelLoadError(
            f"{shown} is incomplete or not a standard checkpoint ({type(err).__name__}: {err} "
            "while reading its shapes). Download it again, or use the original model."
        ) from err


def vae_config_from_shapes(shapes: Shapes, base: dict[str, Any]) -> dict[str, Any]:
    """A VAE's config from its original-layout shapes (for a separate VAE file)."""
    return _vae_config(base, shapes)


# ---------------------------------------------------------------------------- helpers


def _indices(shapes: Shapes, pattern: str) -> list[int]:
    """Sorted distinct integers captured by `pattern` (one group) over the keys."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for key in shapes if (m := regex.match(key))})


def _groups(widths: list[int]) -> int:
    """GroupNorm groups: 32 as in every real SD model, fewer where the widths do not divide."""
    return next(g for g in (32, 16, 8, 4, 2, 1) if all(w % g == 0 for w in widths))


def _heads(width: int) -> int:
    """Attention heads of 64 channels each, as in SD2, SDXL and OpenAI's CLIP."""
    return width // 64 if width % 64 == 0 else 1


def _merge(base: dict[str, Any], derived: dict[str, Any], fallback: dict[str, Any]) -> dict[str, Any]:
    """The shipped config where the file agrees with it, else `derived` plus `fallback`."""
    if all(base.get(k, _DEFAULTS.get(k)) == v for k, v in derived.items()):
        return dict(base)
    return {**base, **derived, **fallback}


# diffusers' defaults for keys a shipped config may leave out.
_DEFAULTS = {
    "transformer_layers_per_block": 1,
    "projection_class_embeddings_input_dim": None,
    "use_linear_projection": False,
}


# ---------------------------------------------------------------------------- components


def _unet_config(base: dict[str, Any], s: Shapes, pooled_dim: int | None) -> dict[str, Any]:
    model_channels, in_channels = s["input_blocks.0.0.weight"][:2]
    depth_of = {
        i: len(_indices(s, rf"input_blocks\.{i}\.1\.transformer_blocks\.(\d+)\."))
        for i in _indices(s, r"input_blocks\.(\d+)\.")
    }
    levels: list[dict[str, Any]] = [{"resnets": 0, "width": 0, "depth": 0}]
    for i in sorted(depth_of)[1:]:
        if f"input_blocks.{i}.0.op.weight" in s:  # a downsampler ends the level
            levels.append({"resnets": 0, "width": 0, "depth": 0})
            continue
        level = levels[-1]
        level["resnets"] += 1
        level["width"] = s[f"input_blocks.{i}.0.out_layers.3.weight"][0]
        level["depth"] = max(level["depth"], depth_of[i])
    widths = [level["width"] for level in levels]
    layers = [level["resnets"] for level in levels]
    depths = [max(level["depth"], 1) for level in levels]
    if widths[0] != model_channels or s["time_embed.0.weight"][0] != 4 * model_channels:
        raise ValueError("the U-Net's widths do not fit together")
    attention = [level["depth"] > 0 for level in levels]
    context = next(shape[1] for key, shape in s.items() if key.endswith("attn2.to_k.weight"))
    proj_in = next(shape for key, shape in s.items() if key.endswith(".proj_in.weight"))
    derived: dict[str, Any] = {
        "in_channels": in_channels,
        "out_channels": s["out.2.weight"][0],
        "block_out_channels": widths,
        "layers_per_block": layers[0] if len(set(layers)) == 1 else layers,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)],
        "transformer_layers_per_block": 1 if set(depths) == {1} else depths,
        "cross_attention_dim": context,
        "use_linear_projection": len(proj_in) == 2,
    }
    if "label_emb.0.0.weight" in s:  # SDXL: sizes, crop and pooled text embedding
        adm = s["label_emb.0.0.weight"][1]
        derived["projection_class_embeddings_input_dim"] = adm
        if adm != base.get("projection_class_embeddings_input_dim"):
            if pooled_dim is None or (adm - pooled_dim) % 6:
                raise ValueError(f"the SDXL conditioning width {adm} does not fit the text encoder")
            derived["addition_time_embed_dim"] = (adm - pooled_dim) // 6
    if isinstance(base["attention_head_dim"], int):  # SD1: a fixed count of 8 heads
        heads: Any = (
            base["attention_head_dim"] if all(w % base["attention_head_dim"] == 0 for w in widths) else 1
        )
    else:
        heads = [_heads(w) for w in widths]
    return _merge(base, derived, {"attention_head_dim": heads, "norm_num_groups": _groups(widths)})


def _vae_config(base: dict[str, Any], s: Shapes) -> dict[str, Any]:
    levels = _indices(s, r"encoder\.down\.(\d+)\.")
    widths = [s[f"encoder.down.{i}.block.0.conv2.weight"][0] for i in levels]
    derived = {
        "in_channels": s["encoder.conv_in.weight"][1],
        "out_channels": s["decoder.conv_out.weight"][0],
        "latent_channels": s["decoder.conv_in.weight"][1],
        "block_out_channels": widths,
        "layers_per_block": len(_indices(s, r"encoder\.down\.0\.block\.(\d+)\.")),
        "down_block_types": ["DownEncoderBlock2D"] * len(widths),
        "up_block_types": ["UpDecoderBlock2D"] * len(widths),
    }
    return _merge(base, derived, {"norm_num_groups": _groups(widths)})


def _clip_config(base: dict[str, Any], s: Shapes, dropped: int = 0) -> dict[str, Any]:
    vocab, hidden = s["text_model.embeddings.token_embedding.weight"]
    derived = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "max_position_embeddings": s["text_model.embeddings.position_embedding.weight"][0],
        "num_hidden_layers": len(_indices(s, r"text_model\.encoder\.layers\.(\d+)\.")) - dropped,
        "intermediate_size": s["text_model.encoder.layers.0.mlp.fc1.weight"][0],
    }
    return _merge(base, derived, {"num_attention_heads": _heads(hidden)})


def _open_clip_config(base: dict[str, Any], s: Shapes, dropped: int = 0) -> dict[str, Any]:
    vocab, hidden = s["token_embedding.weight"]
    derived = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "max_position_embeddings": s["positional_embedding"][0],
        "num_hidden_layers": len(_indices(s, r"transformer\.resblocks\.(\d+)\.")) - dropped,
        "intermediate_size": s["transformer.resblocks.0.mlp.c_fc.weight"][0],
    }
    if "text_projection" in s and "WithProjection" in str(base.get("architectures")):
        derived["projection_dim"] = s["text_projection"][1]
    if derived["num_hidden_layers"] < 1:
        raise ValueError("the text encoder has too few layers")
    return _merge(base, derived, {"num_attention_heads": _heads(hidden)})
