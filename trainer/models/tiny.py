"""Tiny random-weight Stable Diffusion pipelines for tests, the demo and offline use.

They are shaped like the real SD1.5, SD2.x 768-v and SDXL models (the same block types,
cross-attention in down, mid and up blocks, linear projections for SD2/SDXL, SDXL's
micro-conditioning and two text encoders, a VAE that downsamples by 8, the real CLIP
tokenizer), so LoRA injection, module names and the training loop meet what they meet
on a real model, only thousands of times smaller. A fixed seed gives the same weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from trainer.models.tokenizer import END_TOKEN, VOCAB_SIZE, build_clip_tokenizer, write_bpe_files

ARCHS = ("sd15", "sd2v", "sdxl")
FORMATS = ("diffusers", "single-file")
TEXT_HIDDEN = 32
TEXT2_PROJECTION = 32
SDXL_TIME_EMBED_DIM = 8


def _text_config(hidden_act: str, projection_dim: int | None = None) -> CLIPTextConfig:
    """A 4-layer CLIP text encoder with the real vocabulary and 77 positions (clip_skip 2 works)."""
    extra = {"projection_dim": projection_dim} if projection_dim else {}
    return CLIPTextConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=TEXT_HIDDEN * 4,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act=hidden_act,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=1,
        **extra,
    )


def _vae(scaling_factor: float) -> AutoencoderKL:
    """Four encoder blocks, so 128 px images become 16x16 latents with 4 channels."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=128,
        scaling_factor=scaling_factor,
    )


def _unet_sd(arch: str) -> UNet2DConditionModel:
    """SD1/SD2-shaped U-Net: cross-attention in the two outer levels and the middle."""
    sd2 = arch == "sd2v"
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=TEXT_HIDDEN,
        # As in diffusers' SD configs, this number is the count of heads per block.
        attention_head_dim=[2, 4, 4] if sd2 else 2,
        use_linear_projection=sd2,
        upcast_attention=sd2,
    )


def _unet_sdxl() -> UNet2DConditionModel:
    """SDXL-shaped U-Net: no attention at the top level, two transformer layers at the
    bottom, and the text_time micro-conditioning (sizes, crop, pooled TE2 output)."""
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 64),
        layers_per_block=2,
        transformer_layers_per_block=(1, 1, 2),
        norm_num_groups=8,
        cross_attention_dim=TEXT_HIDDEN * 2,
        attention_head_dim=(2, 4, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=SDXL_TIME_EMBED_DIM,
        projection_class_embeddings_input_dim=6 * SDXL_TIME_EMBED_DIM + TEXT2_PROJECTION,
    )


def _scheduler(v_prediction: bool) -> DDPMScheduler:
    """The SD training schedule; inference from this folder uses it too."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        steps_offset=1,
        prediction_type="v_prediction" if v_prediction else "epsilon",
    )


def build_tiny_pipeline(arch: str, seed: int = 0) -> StableDiffusionPipeline | StableDiffusionXLPipeline:
    """Build a tiny random-weight pipeline of arch "sd15", "sd2v" or "sdxl" in memory.

    The caller's global torch RNG state is left as it was.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    with torch.random.fork_rng(devices=[]):
        return _build(arch, seed)


def _build(arch: str, seed: int) -> StableDiffusionPipeline | StableDiffusionXLPipeline:
    # Each component gets its own seed so changing one never changes another's weights.
    torch.manual_seed(seed)
    if arch == "sdxl":
        vae = _vae(scaling_factor=0.13025)
        torch.manual_seed(seed + 1)
        text_encoder = CLIPTextModel(_text_config("quick_gelu"))
        torch.manual_seed(seed + 2)
        text_encoder_2 = CLIPTextModelWithProjection(_text_config("gelu", TEXT2_PROJECTION))
        torch.manual_seed(seed + 3)
        unet = _unet_sdxl()
        return StableDiffusionXLPipeline(
            vae=vae,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=build_clip_tokenizer(END_TOKEN),
            tokenizer_2=build_clip_tokenizer("!"),
            unet=unet,
            scheduler=_scheduler(v_prediction=False),
            add_watermarker=False,
        )
    sd2 = arch == "sd2v"
    vae = _vae(scaling_factor=0.18215)
    torch.manual_seed(seed + 1)
    text_encoder = CLIPTextModel(_text_config("gelu" if sd2 else "quick_gelu"))
    torch.manual_seed(seed + 3)
    unet = _unet_sd(arch)
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=build_clip_tokenizer("!" if sd2 else END_TOKEN),
        unet=unet,
        scheduler=_scheduler(v_prediction=sd2),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def write_tiny_model(arch: str, fmt: str, out: Path, seed: int = 0) -> Path:
    """Write a tiny model to `out` and return the path written.

    fmt "diffusers": a pipeline folder (save_pretrained, safetensors) at `out`.
    fmt "single-file": one fp16 .safetensors checkpoint in the original layout, as
    downloaded from CivitAI (LDM for sd15 / sd2v, SGM for sdxl), with the same weights as
    the diffusers folder of the same seed. `out` is the file when it ends in .safetensors,
    otherwise a folder that gets `tiny-<arch>.safetensors`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    out = Path(out)
    pipeline = build_tiny_pipeline(arch, seed=seed)
    if fmt == "single-file":
        return _write_single_file(pipeline, arch, out, seed)
    pipeline.save_pretrained(out, safe_serialization=True)
    # Also the BPE files, as in the real model repos, for tools that read them directly.
    for name in ("tokenizer", "tokenizer_2"):
        if (out / name).is_dir():
            write_bpe_files(out / name)
    return out


def _write_single_file(pipeline, arch: str, out: Path, seed: int) -> Path:
    from safetensors.torch import save_file

    from trainer.models.single_file import to_original_layout

    path = out if out.suffix == ".safetensors" else out / f"tiny-{arch}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    names = ("unet", "vae", "text_encoder", "text_encoder_2")
    components = {
        name: getattr(pipeline, name) for name in names if getattr(pipeline, name, None) is not None
    }
    loader_arch = {"sd15": "sd1", "sd2v": "sd2", "sdxl": "sdxl"}[arch]
    generator = torch.Generator().manual_seed(seed + 4)
    state = to_original_layout(components, loader_arch, generator)
    # Real downloads are mostly fp16; integer buffers (position_ids) keep their type.
    state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(path), metadata={"format": "pt"})
    return path
