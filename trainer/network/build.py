"""The network of a run from its settings: which class, which options, which groups.

- `LoRA_type` Standard / Kohya LoCon / LoRA-FA (down frozen) -> our :class:`LoRANetwork`, with ranks per U-Net
  block (`block_dims` ...) or from the weights file (`dim_from_weights`); LyCORIS/* ->
  :class:`LycorisNetwork` (lycoris-lora) with the Kohya GUI's LyCORIS options.
- `network_param_groups`: learning rates per part, LoRA+ and block weights.
- `kohya_network_args`: the ``ss_network_module`` / ``ss_network_args`` metadata Kohya
  writes for the same settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from trainer.config import TrainingConfig
from trainer.config.rules.blocks import DIMS_KEYS, BlockDims, BlockWeights
from trainer.config.rules.lycoris import OPTION_DEFAULTS, TYPE_OPTIONS, kohya_args
from trainer.network.inject import LoRANetwork
from trainer.network.lycoris_net import ALGOS, LycorisNetwork
from trainer.network.param_groups import LoRAPlus, build_param_groups
from trainer.network.ranks import RankPlan, ranks_from_file

LYCORIS_OPTION_KEYS = tuple(k for k in OPTION_DEFAULTS if k != "preset")


def lycoris_options(cfg: TrainingConfig) -> dict[str, Any]:
    """The LyCORIS network arguments of a config (preset included), as saved in the file."""
    return {"preset": cfg.LyCORIS_preset, **{k: getattr(cfg, k) for k in LYCORIS_OPTION_KEYS}}


def _training_lycoris_options(cfg: TrainingConfig) -> dict[str, Any]:
    """lycoris_options, with bypass mode under fp8_base: LyCORIS cannot multiply float8
    weights, so its change is added to the layer's output (the saved file is the same)."""
    options = lycoris_options(cfg)
    if cfg.fp8_base and "bypass_mode" in TYPE_OPTIONS[cfg.LoRA_type]:
        options["bypass_mode"] = True
    return options


def build_network(
    cfg: TrainingConfig,
    unet: nn.Module,
    text_encoders: Sequence[nn.Module],
    *,
    arch: str,
    train_unet: bool,
    train_text_encoder: bool,
) -> nn.Module:
    """The (not yet applied) network for `cfg.LoRA_type`."""
    common = {
        "arch": arch,
        "rank": cfg.network_dim,
        "alpha": cfg.network_alpha,
        "dropout": cfg.network_dropout,
        "rank_dropout": cfg.rank_dropout,
        "module_dropout": cfg.module_dropout,
        "train_unet": train_unet,
        "train_text_encoder": train_text_encoder,
    }
    conv_rank = cfg.conv_dim if cfg.LoRA_type == "Kohya LoCon" else 0
    if cfg.LoRA_type in ALGOS:
        network = LycorisNetwork(
            unet,
            text_encoders,
            lora_type=cfg.LoRA_type,
            conv_rank=cfg.conv_dim,
            conv_alpha=cfg.conv_alpha,
            options=_training_lycoris_options(cfg),
            **common,
        )
        if not network.loras:
            raise ValueError(
                f"LyCORIS preset {cfg.LyCORIS_preset!r} matched no layer of this model; "
                "choose 'full' or 'attn-mlp'"
            )
        return network
    network = LoRANetwork(
        unet,
        text_encoders,
        conv_rank=conv_rank,
        conv_alpha=cfg.conv_alpha,
        ranks=rank_plan(cfg, arch),
        **common,
    )
    # LoRA-FA (Kohya's LoRA-FA network type): the random down projection stays as initialised
    network.frozen_down = cfg.LoRA_type == "LoRA-FA"
    return network


def rank_plan(cfg: TrainingConfig, arch: str) -> RankPlan:
    """Each module's rank and alpha for Standard / Kohya LoCon (see trainer.network.ranks)."""
    locon = cfg.LoRA_type == "Kohya LoCon"
    conv_rank = cfg.conv_dim if locon else 0
    plain = RankPlan(cfg.network_dim, cfg.network_alpha, conv_rank, cfg.conv_alpha)
    if cfg.dim_from_weights and cfg.network_weights:
        return RankPlan(cfg.network_dim, cfg.network_alpha, from_file=ranks_from_file(cfg.network_weights))
    # The Kohya GUI sends conv_alpha with LoCon only; sd-scripts then takes 1.
    blocks = BlockDims.from_settings(
        {k: getattr(cfg, k) for k in DIMS_KEYS},
        arch=arch,
        rank=cfg.network_dim,
        alpha=cfg.network_alpha,
        conv_rank=conv_rank,
        conv_alpha=cfg.conv_alpha if locon else 1.0,
        lr_weights=block_weights_of(cfg, arch),
    )
    return plain if blocks is None else RankPlan(cfg.network_dim, cfg.network_alpha, blocks=blocks)


def block_weights_of(cfg: TrainingConfig, arch: str) -> BlockWeights | None:
    """Parsed block weights, or None when none is set (the config check caught bad text)."""
    return BlockWeights.parse(
        cfg.down_lr_weight, cfg.mid_lr_weight, cfg.up_lr_weight, cfg.block_lr_zero_threshold, arch
    )


def network_param_groups(
    cfg: TrainingConfig, network: nn.Module, *, arch: str, unet_lr: float, text_encoder_lr: float
) -> list[dict]:
    """Optimizer groups with the run's LoRA+ ratios and block weights."""
    loraplus = LoRAPlus(cfg.loraplus_lr_ratio, cfg.loraplus_unet_lr_ratio, cfg.loraplus_text_encoder_lr_ratio)
    return build_param_groups(
        network,
        unet_lr=unet_lr,
        text_encoder_lr=text_encoder_lr,
        loraplus=loraplus,
        block_weights=block_weights_of(cfg, arch),
    )


def kohya_network_args(cfg: TrainingConfig) -> tuple[str, dict[str, str]]:
    """(ss_network_module, ss_network_args) as Kohya writes them for these settings."""
    args: dict[str, str] = {}
    if cfg.LoRA_type in ALGOS:
        module = "lycoris.kohya"
        args.update(algo=ALGOS[cfg.LoRA_type], conv_dim=str(cfg.conv_dim), conv_alpha=str(cfg.conv_alpha))
        args.update(kohya_args(cfg.LoRA_type, lycoris_options(cfg)))
    else:
        module = "networks.lora_fa" if cfg.LoRA_type == "LoRA-FA" else "networks.lora"
        if cfg.LoRA_type == "Kohya LoCon":
            args.update(conv_dim=str(cfg.conv_dim), conv_alpha=str(cfg.conv_alpha))
        for key in ("down_lr_weight", "mid_lr_weight", "up_lr_weight", *DIMS_KEYS):
            if getattr(cfg, key).strip():
                args[key] = getattr(cfg, key).strip()
        if cfg.block_lr_zero_threshold:
            args["block_lr_zero_threshold"] = str(cfg.block_lr_zero_threshold)
    for key in (
        "network_dropout",
        "rank_dropout",
        "module_dropout",
        "loraplus_lr_ratio",
        "loraplus_unet_lr_ratio",
        "loraplus_text_encoder_lr_ratio",
    ):
        if getattr(cfg, key):
            args[key] = str(getattr(cfg, key))
    return module, args
