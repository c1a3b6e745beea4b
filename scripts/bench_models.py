"""Random-weight models for the benchmark: the tiny test models or the full-size ones.

`sd15` and `sdxl` are built from the published configs we ship in
trainer/models/configs (the same numbers the real checkpoints load with), with random
weights: the compute per step is the real one, and nothing is downloaded. `tiny` and
`tiny-sdxl` are trainer.models.tiny's test models. A fixed seed gives the same weights,
so the two sides of a benchmark (ours and the reference, each in its own process) train
the same model.
"""

from __future__ import annotations

import torch

from trainer.models.load import SDModels, training_scheduler

ARCHS = ("tiny", "tiny-sdxl", "sd15", "sdxl")
_FULL = {"sd15": "sd15", "sdxl": "sdxl"}


def loader_arch(arch: str) -> str:
    """The trainer's architecture name ("sd1" or "sdxl") of a benchmark arch."""
    return "sdxl" if arch in ("sdxl", "tiny-sdxl") else "sd1"


def build_models(
    arch: str, *, device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> SDModels:
    """Frozen, eval-mode models of `arch` on `device`, weights in `dtype`.

    Full-size models are initialised directly on the device (fast on a GPU), in fp32 so
    the random initialisation is the usual one, then cast.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if arch in _FULL:
        tokenizers, text_encoders, vae, unet = _full(_FULL[arch], device, seed)
    else:
        tokenizers, text_encoders, vae, unet = _tiny("sdxl" if arch == "tiny-sdxl" else "sd15", seed)
    for module in (*text_encoders, vae, unet):
        module.requires_grad_(False)
        module.eval()
        module.to(device=device)
        if dtype != torch.float32:
            module.to(dtype=dtype)
    return SDModels(
        arch=loader_arch(arch),
        v_parameterization=False,
        tokenizers=tokenizers,
        text_encoders=text_encoders,
        vae=vae,
        unet=unet,
        noise_scheduler=training_scheduler(False),
        latent_scale=float(vae.config.scaling_factor),
        source=f"random {arch}",
    )


def _tiny(arch: str, seed: int) -> tuple[list, list, torch.nn.Module, torch.nn.Module]:
    from trainer.models.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline(arch, seed=seed)
    if arch == "sdxl":
        return (
            [pipe.tokenizer, pipe.tokenizer_2],
            [pipe.text_encoder, pipe.text_encoder_2],
            pipe.vae,
            pipe.unet,
        )
    return [pipe.tokenizer], [pipe.text_encoder], pipe.vae, pipe.unet


def _full(name: str, device: str, seed: int) -> tuple[list, list, torch.nn.Module, torch.nn.Module]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from trainer.models.ldm_configs import shipped_config
    from trainer.models.tokenizer import build_clip_tokenizer

    components = ["text_encoder", "text_encoder_2"] if name == "sdxl" else ["text_encoder"]
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        text_encoders = []
        for component in components:
            config = CLIPTextConfig.from_dict(shipped_config(name, component))
            cls = CLIPTextModelWithProjection if component.endswith("_2") else CLIPTextModel
            text_encoders.append(cls(config))
        vae = AutoencoderKL.from_config(shipped_config(name, "vae"))
        unet = UNet2DConditionModel.from_config(shipped_config(name, "unet"))
    tokenizers = [
        build_clip_tokenizer(shipped_config(name, c.replace("text_encoder", "tokenizer"))["pad_token"])
        for c in components
    ]
    return tokenizers, text_encoders, vae, unet
