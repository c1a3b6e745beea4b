"""Helpers of the Utilities' tests (tests/trainer/test_tools_*.py): LoRA files with known
weights on the tiny models, diffusers pipelines that load them, and their outputs.

- `make_lora`: a LoRA (LoCon with `conv_rank`) on the loaded models whose singular values
  decay (0.6 ** i per rank), like a trained one, saved where asked.
- `module_deltas`: every module's change (alpha / rank * up @ down) of a file, float32.
- `pipeline`, `unet_out`: a tiny diffusers pipeline and its U-Net / text output for a fixed input.
- `full_size_sd15_lora`: a rank-1 LoRA with every module sd-scripts makes at full SD1.5 size
  (264, or 350 with LoCon), built from meta-device models, so names are the real ones.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from safetensors.torch import load_file

from trainer.network import LoRANetwork, find_targets
from trainer.network.lora_file import save_lora
from trainer.tools.lora_io import LoraFile


def make_lora(
    models, path: Path, *, rank: int = 8, alpha: float = 4, conv_rank: int = 0, conv_alpha: float = 1,
    seed: int = 0, dtype: torch.dtype = torch.float32, metadata: dict | None = None, std: float = 0.3,
) -> Path:  # fmt: skip
    """A LoRA file with random weights of decaying strength per rank (like a trained one)."""
    net = LoRANetwork(
        models.unet, models.text_encoders, arch=models.arch, rank=rank, alpha=alpha,
        conv_rank=conv_rank, conv_alpha=conv_alpha,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    state = net.kohya_state_dict()
    for key, value in state.items():
        if key.endswith("lora_down.weight"):
            decay = 0.6 ** torch.arange(value.shape[0], dtype=torch.float32)
            shape = (-1,) + (1,) * (value.dim() - 1)
            state[key] = torch.randn(value.shape, generator=gen) * decay.reshape(shape) * std
        elif key.endswith("lora_up.weight"):
            state[key] = torch.randn(value.shape, generator=gen) * std
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(alpha)}
    return save_lora(path, state, {**meta, **(metadata or {})}, dtype=dtype)


def module_deltas(path: Path) -> dict[str, torch.Tensor]:
    lora = LoraFile(path)
    return {m.name: m.delta() for m in lora.modules()}


def pipeline(folder: Path, arch: str):
    cls = StableDiffusionXLPipeline if arch == "sdxl" else StableDiffusionPipeline
    return cls.from_pretrained(folder)


def unet_out(pipe, seed: int = 1) -> list[torch.Tensor]:
    """The U-Net's prediction and the text encoders' hidden states for fixed inputs."""
    gen = torch.Generator().manual_seed(seed)
    cfg = pipe.unet.config
    kwargs = {
        "sample": torch.randn(1, cfg.in_channels, 8, 8, generator=gen),
        "timestep": torch.tensor([500]),
        "encoder_hidden_states": torch.randn(1, 16, cfg.cross_attention_dim, generator=gen),
    }
    if cfg.addition_embed_type == "text_time":
        text_dim = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        kwargs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(1, text_dim, generator=gen),
            "time_ids": torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]]),
        }
    ids = torch.randint(0, 1000, (1, 16), generator=gen)
    encoders = [e for e in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if e is not None]
    with torch.no_grad():
        return [pipe.unet(**kwargs).sample] + [e(ids).last_hidden_state for e in encoders]


SD15_UNET = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "cross_attention_dim": 768, "block_out_channels": [320, 640, 1280, 1280], "attention_head_dim": 8,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}  # fmt: skip
CLIP_L = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}


def full_size_sd15_lora(path: Path, conv: bool = False, rank: int = 1) -> Path:
    """A rank-`rank` LoRA with sd-scripts' full-size SD1.5 module names and shapes."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET)
        te = CLIPTextModel(CLIPTextConfig(**CLIP_L, max_position_embeddings=77))
    unet_found, te_found = find_targets(unet, [te], arch="sd1", conv=conv)
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, layer in unet_found + te_found:
        out, ins, *kernel = layer.weight.shape
        state[f"{name}.lora_down.weight"] = torch.randn(rank, ins, *kernel, generator=gen) * 0.1
        state[f"{name}.lora_up.weight"] = (
            torch.randn(out, rank, *([1, 1] if kernel else []), generator=gen) * 0.1
        )
        state[f"{name}.alpha"] = torch.tensor(float(rank))
    meta = {
        "ss_network_module": "networks.lora",
        "ss_base_model_version": "sd_v1",
        "ss_network_dim": str(rank),
    }
    return save_lora(path, state, meta, dtype=torch.float16)


def keys_of(path: Path) -> list[str]:
    return sorted(load_file(str(path)).keys())
