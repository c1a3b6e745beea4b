"""Which layers get a LoRA, what they are called, and the network that holds them all.

Targets (those of Kohya's LoRA network, docs/ANCHORS.md section 5, so module counts and names match):
- U-Net: every Linear and 1x1 Conv2d inside each ``Transformer2DModel`` (proj_in,
  proj_out, attn1/attn2 to_q/to_k/to_v/to_out.0, ff.net.0.proj, ff.net.2).
- U-Net with ``conv_rank > 0`` (LoCon): also every Linear / Conv2d of the ResNet blocks
  (conv1, conv2, time_emb_proj, conv_shortcut) and of the down/up-samplers. 3x3 convs
  use conv_rank / conv_alpha; Linear and 1x1 convs use rank / alpha.
- Text encoder(s): q_proj, k_proj, v_proj, out_proj, fc1, fc2 of every CLIP layer.

Names: prefix + module path with "." -> "_". SD1/SD2 U-Net paths are diffusers paths,
SDXL ones are SGM paths (see kohya_names). Text-encoder paths are spelled from
``text_model.`` whatever the transformers version (recent CLIPTextModel dropped that
level), which is what A1111, ComfyUI and diffusers' Kohya converter expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

import torch
from diffusers.models.downsampling import Downsample2D
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.upsampling import Upsample2D
from torch import Tensor, nn
from transformers.models.clip.modeling_clip import CLIPMLP, CLIPAttention

from trainer.network.kohya_names import TE1_PREFIX, TE2_PREFIX, TE_PREFIX, UNET_PREFIX, SgmLayout, kohya_name
from trainer.network.lora import LoRAModule
from trainer.network.module_set import ModuleSet
from trainer.network.ranks import RankPlan

ARCHS = ("sd1", "sd2", "sdxl")
_TE_PREFIXES = {"sd1": (TE_PREFIX,), "sd2": (TE_PREFIX,), "sdxl": (TE1_PREFIX, TE2_PREFIX)}


def _is_1x1(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and tuple(module.kernel_size) == (1, 1)


def unet_targets(unet: nn.Module, arch: str, *, conv: bool = False) -> list[tuple[str, nn.Module]]:
    """(Kohya name, layer) for every U-Net layer that gets a LoRA (LoCon layers if ``conv``)."""
    layout = SgmLayout.from_config(unet.config) if arch == "sdxl" else None
    found: dict[str, nn.Module] = {}
    for block_path, block in unet.named_modules():
        if isinstance(block, Transformer2DModel):
            any_conv = False  # only Linear and 1x1 convs
        elif conv and isinstance(block, (ResnetBlock2D, Downsample2D, Upsample2D)):
            any_conv = True
        else:
            continue
        for child_path, child in block.named_modules():
            wanted = isinstance(child, nn.Linear) or (
                isinstance(child, nn.Conv2d) and (any_conv or _is_1x1(child))
            )
            if child_path and wanted:
                path = f"{block_path}.{child_path}"
                name = kohya_name(UNET_PREFIX, layout.to_sgm(path) if layout else path)
                if name in found and found[name] is not child:
                    raise ValueError(f"two U-Net layers share the LoRA name {name}")
                found[name] = child
    return list(found.items())


def text_encoder_targets(text_encoders: Sequence[nn.Module], arch: str) -> list[tuple[str, nn.Module]]:
    """(Kohya name, layer) for the attention and MLP projections of every CLIP layer."""
    prefixes = _TE_PREFIXES[arch]
    if len(text_encoders) != len(prefixes):
        raise ValueError(f"{arch} expects {len(prefixes)} text encoder(s), got {len(text_encoders)}")
    found: list[tuple[str, nn.Module]] = []
    for prefix, encoder in zip(prefixes, text_encoders, strict=True):
        for block_path, block in encoder.named_modules():
            if not isinstance(block, (CLIPAttention, CLIPMLP)):
                continue
            for child_path, child in block.named_children():
                if isinstance(child, nn.Linear):
                    path = f"{block_path}.{child_path}"
                    if not path.startswith("text_model."):
                        path = "text_model." + path
                    found.append((kohya_name(prefix, path), child))
    return found


def find_targets(
    unet: nn.Module | None, text_encoders: Sequence[nn.Module], *, arch: str, conv: bool = False
) -> tuple[list[tuple[str, nn.Module]], list[tuple[str, nn.Module]]]:
    """(U-Net targets, text-encoder targets); works on meta-device models (no weights touched)."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    unet_found = unet_targets(unet, arch, conv=conv) if unet is not None else []
    te_found = text_encoder_targets(text_encoders, arch) if text_encoders else []
    return unet_found, te_found


class LoRANetwork(ModuleSet):
    """All LoRA modules of one training run, registered under their Kohya names.

    Because each module is a child named ``lora_unet_...`` / ``lora_te_...`` holding
    ``lora_down``, ``lora_up`` and ``alpha``, this network's state dict *is* the Kohya file
    layout. Parts switched off (``train_unet`` / ``train_text_encoder`` False) get no
    modules at all, as in sd-scripts. ``ranks`` gives each module its own rank and alpha
    (block_dims, dim_from_weights); without it every module has ``rank`` / ``conv_rank``.
    """

    def __init__(
        self,
        unet: nn.Module | None,
        text_encoders: Sequence[nn.Module],
        *,
        arch: str,
        rank: int,
        alpha: float,
        conv_rank: int = 0,
        conv_alpha: float = 0,
        multiplier: float = 1.0,
        dropout: float = 0.0,
        rank_dropout: float = 0.0,
        module_dropout: float = 0.0,
        train_unet: bool = True,
        train_text_encoder: bool = True,
        ranks: RankPlan | None = None,
    ) -> None:
        super().__init__()
        if not (train_unet or train_text_encoder):
            raise ValueError("nothing to train: both train_unet and train_text_encoder are False")
        if train_unet and unet is None:
            raise ValueError("train_unet is True but no U-Net was given")
        if train_text_encoder and not text_encoders:
            raise ValueError("train_text_encoder is True but no text encoder was given")
        self.arch = arch
        self.rank, self.alpha, self.conv_rank, self.conv_alpha = rank, alpha, conv_rank, conv_alpha
        self.multiplier = multiplier
        plan = ranks or RankPlan(rank, alpha, conv_rank, conv_alpha)
        unet_found, te_found = find_targets(
            unet if train_unet else None,
            text_encoders if train_text_encoder else [],
            arch=arch,
            conv=plan.conv,
        )
        dropouts = {
            "multiplier": multiplier,
            "dropout": dropout,
            "rank_dropout": rank_dropout,
            "module_dropout": module_dropout,
        }
        self.te_loras: list[LoRAModule] = []
        self.unet_loras: list[LoRAModule] = []
        for found, loras in ((te_found, self.te_loras), (unet_found, self.unet_loras)):
            for name, module in found:
                r, a = plan.of(name, isinstance(module, nn.Conv2d) and not _is_1x1(module))
                if r > 0:  # rank 0: no module here (block_dims 0, or not in the weights file)
                    loras.append(LoRAModule(name, module, r, a, **dropouts))
        for lora in self.te_loras + self.unet_loras:
            self.add_module(lora.lora_name, lora)

    def merge_to_base(self) -> None:
        """Bake every delta into the base weights (for export or fast inference)."""
        for lora in self.loras:
            lora.merge_to_base()

    def param_groups(self, unet_lr: float, text_encoder_lr: float) -> list[dict]:
        """Optimizer parameter groups for the parts being trained.

        A part whose learning rate is 0 (or None) is frozen (requires_grad False) and left
        out, so no gradients or optimizer state are spent on it.
        """
        groups = []
        for label, loras, lr in (
            ("text_encoder", self.te_loras, text_encoder_lr),
            ("unet", self.unet_loras, unet_lr),
        ):
            params = [p for lora in loras for p in lora.parameters()]
            for p in params:
                p.requires_grad_(bool(lr))
            if params and lr:
                groups.append({"params": params, "lr": float(lr), "name": label})
        if not groups:
            raise ValueError("no LoRA parameters to train: every trained part has learning rate 0")
        return groups

    def kohya_state_dict(self, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
        """``<name>.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha`` tensors, detached."""
        return {k: v.detach().to(dtype=dtype or v.dtype) for k, v in self.state_dict().items()}

    @torch.no_grad()
    def load_kohya_weights(self, path_or_state_dict: str | PathLike | dict[str, Tensor]) -> None:
        """Continue from an existing Kohya LoRA file (or state dict) of the same shape.

        Raises ValueError naming the missing / unknown keys or the mismatched shapes, which
        usually means a different architecture, rank, conv_dim or trained parts.
        """
        source, loaded, own, missing, unknown = self.weights_to_load(path_or_state_dict)
        if missing or unknown:
            raise ValueError(
                f"LoRA weights in {source} do not fit this network ({self.arch}, rank {self.rank}, "
                f"conv rank {self.conv_rank}): {len(missing)} missing keys {missing[:3]}, "
                f"{len(unknown)} unknown keys {unknown[:3]}"
            )
        for key, tensor in own.items():
            value = loaded[key]
            if value.numel() != tensor.numel() or (value.dim() > 1 and value.shape != tensor.shape):
                raise ValueError(
                    f"LoRA weights in {source}: {key} has shape {tuple(value.shape)}, "
                    f"this network expects {tuple(tensor.shape)} (different rank?)"
                )
        for key, tensor in own.items():
            tensor.copy_(loaded[key].reshape(tensor.shape).to(tensor.dtype))
        for lora in self.loras:
            lora.refresh_scale()
