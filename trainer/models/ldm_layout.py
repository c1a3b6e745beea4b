"""Where each diffusers weight lives in an original (LDM / SGM) single-file checkpoint.

A checkpoint downloaded from CivitAI stores the whole model in one file, under the names
of Stability's original code: `model.diffusion_model.*` (U-Net), `first_stage_model.*`
(VAE), and the text encoder(s) as `cond_stage_model.transformer.*` (SD1, the Hugging Face
CLIP layout), `cond_stage_model.model.*` (SD2, the OpenCLIP layout) or
`conditioner.embedders.{0,1}.*` (SDXL: CLIP-L in the Hugging Face layout, OpenCLIP bigG).

One function per component answers "which original tensor holds this diffusers weight,
and how is it stored?" (`Source`). The loader asks it for every weight of the model it
builds, the tiny-model writer asks it the other way round, so the two can never drift
apart. The U-Net mapping is `SgmLayout`, the same one that names SDXL LoRA modules.

Pure Python: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer.models.checkpoint_kind import SD1_TEXT, SD2_TEXT, SDXL_TEXT1, SDXL_TEXT2, UNET, VAE

# Component -> (prefix in the file, text-encoder layout) per architecture.
COMPONENT_PREFIXES = {
    "sd1": {"unet": UNET, "vae": VAE, "text_encoder": SD1_TEXT},
    "sd2": {"unet": UNET, "vae": VAE, "text_encoder": SD2_TEXT},
    "sdxl": {"unet": UNET, "vae": VAE, "text_encoder": SDXL_TEXT1, "text_encoder_2": SDXL_TEXT2},
}
TEXT_LAYOUTS = {
    "sd1": {"text_encoder": "clip"},
    "sd2": {"text_encoder": "open_clip"},
    "sdxl": {"text_encoder": "clip", "text_encoder_2": "open_clip"},
}
# SD2 uses the penultimate layer of OpenCLIP ViT-H; the file holds all 24 layers and the
# diffusers text encoder is built with 23. These are the file's layers beyond the model's.
SD2_DROPPED_LAYERS = 1


@dataclass(frozen=True)
class Source:
    """Where one diffusers tensor is stored in the original file.

    qkv: 0/1/2 when the tensor is the q/k/v third of OpenCLIP's fused in_proj tensor.
    transpose: stored transposed (OpenCLIP's text_projection is applied as x @ P).
    conv1x1: a Linear weight stored as a 1x1 convolution (the VAE's attention).
    """

    name: str
    qkv: int | None = None
    transpose: bool = False
    conv1x1: bool = False


# ---------------------------------------------------------------------------- VAE

_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}


def vae_source(key: str, num_levels: int) -> Source:
    """The original name of a diffusers AutoencoderKL weight (num_levels: len(block_out_channels))."""
    parts = key.split(".")
    if parts[0] in ("quant_conv", "post_quant_conv"):
        return Source(key)
    top, part = parts[0], parts[1]
    if top not in ("encoder", "decoder"):
        raise ValueError(f"no original name for VAE weight {key!r}")
    if part == "conv_norm_out":
        return Source(".".join([top, "norm_out", *parts[2:]]))
    if part in ("conv_in", "conv_out"):
        return Source(key)
    if part in ("down_blocks", "up_blocks"):
        level = int(parts[2])
        original = "down" if part == "down_blocks" else "up"
        if part == "up_blocks":  # the decoder's up blocks are counted from the bottom
            level = num_levels - 1 - level
        kind, rest = parts[3], parts[4:]
        if kind == "resnets":
            child = [_VAE_RESNET.get(rest[1], rest[1]), *rest[2:]]
            return Source(".".join([top, original, str(level), "block", rest[0], *child]))
        if kind in ("downsamplers", "upsamplers"):  # "...samplers.0.conv.weight"
            sampler = "downsample" if kind == "downsamplers" else "upsample"
            return Source(".".join([top, original, str(level), sampler, *rest[1:]]))
    if part == "mid_block":
        kind, index, rest = parts[2], int(parts[3]), parts[4:]
        if kind == "resnets":
            return Source(".".join([top, "mid", f"block_{index + 1}", *rest]))
        if kind == "attentions":
            if rest[0] == "to_out":
                rest = ["to_out", *rest[2:]]  # to_out.0.weight -> proj_out.weight
            name = ".".join([top, "mid", "attn_1", _VAE_ATTENTION[rest[0]], *rest[1:]])
            return Source(name, conv1x1=rest[0] != "group_norm" and rest[-1] == "weight")
    raise ValueError(f"no original name for VAE weight {key!r}")


# ---------------------------------------------------------------------------- text encoders


def clip_source(key: str) -> Source | None:
    """Hugging Face CLIP layout (SD1, SDXL's first encoder): the same names under text_model.

    None for buffers the original files may lack (position_ids).
    """
    body = key.removeprefix("text_model.")
    if body.endswith("position_ids"):
        return None
    if body == "text_projection.weight":
        return Source(body)
    return Source("text_model." + body)


_OPEN_CLIP_LAYER = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}
_OPEN_CLIP_TOP = {
    "embeddings.token_embedding.weight": Source("token_embedding.weight"),
    "embeddings.position_embedding.weight": Source("positional_embedding"),
    "final_layer_norm.weight": Source("ln_final.weight"),
    "final_layer_norm.bias": Source("ln_final.bias"),
    "text_projection.weight": Source("text_projection", transpose=True),
}


def open_clip_source(key: str) -> Source | None:
    """OpenCLIP layout (SD2, SDXL's second encoder): resblocks with a fused q/k/v in_proj."""
    body = key.removeprefix("text_model.")
    if body.endswith("position_ids"):
        return None
    if body in _OPEN_CLIP_TOP:
        return _OPEN_CLIP_TOP[body]
    parts = body.split(".")
    if parts[:2] != ["encoder", "layers"]:
        raise ValueError(f"no OpenCLIP name for text-encoder weight {key!r}")
    head = f"transformer.resblocks.{parts[2]}."
    module, leaf = ".".join(parts[3:-1]), parts[-1]
    if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
        return Source(f"{head}attn.in_proj_{leaf}", qkv="qkv".index(module[-6]))
    if module in _OPEN_CLIP_LAYER:
        return Source(f"{head}{_OPEN_CLIP_LAYER[module]}.{leaf}")
    raise ValueError(f"no OpenCLIP name for text-encoder weight {key!r}")


def text_source(layout: str, key: str) -> Source | None:
    """The original name of a text-encoder weight in the given layout ("clip" or "open_clip")."""
    return clip_source(key) if layout == "clip" else open_clip_source(key)
