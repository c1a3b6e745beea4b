"""Rules for the network's shape: block-wise ranks, dim_from_weights and the LyCORIS options.

Called by `training_option_checks`; returns (errors, warnings). Where Kohya ignores a
value without a word, we say so in a warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainer.config.problems import Problem
from trainer.config.rules.blocks import DIMS_KEYS, parse_block_values
from trainer.config.rules.lycoris import ALGOS, OPTION_DEFAULTS, TYPE_OPTIONS

if TYPE_CHECKING:
    from trainer.config.model import TrainingConfig

_LR_KEYS = ("down_lr_weight", "mid_lr_weight", "up_lr_weight")
# The Kohya GUI writes train_on_input true into every preset: not worth a warning.
_QUIET = {"train_on_input"}


def _block_dims(cfg: TrainingConfig) -> tuple[list[Problem], list[str]]:
    errors: list[Problem] = []
    warnings: list[str] = []
    given = [k for k in DIMS_KEYS if getattr(cfg, k).strip()]
    if not given:
        return errors, warnings
    if cfg.LoRA_type in ALGOS:
        for key in given:
            errors.append(
                Problem(
                    key,
                    "ranks per block work with LoRA type Standard or Kohya LoCon "
                    "(as in Kohya); clear it or change the LoRA type",
                )
            )
        return errors, warnings
    arch = "sdxl" if cfg.sdxl else "sd1"
    for key in given:
        try:
            parse_block_values(getattr(cfg, key), arch, whole=key.endswith("dims"))
        except ValueError as exc:
            errors.append(Problem(key, str(exc)))
    if cfg.dim_from_weights:
        warnings.append(
            f"{', '.join(given)} not used: dim_from_weights takes every rank from the "
            "weights file (as in Kohya)"
        )
        return errors, warnings
    active = bool(cfg.block_dims.strip()) or any(getattr(cfg, k).strip() for k in _LR_KEYS)
    idle = [k for k in given if k != "block_dims"] if not active else []
    if active and cfg.conv_block_alphas.strip() and not cfg.conv_block_dims.strip():
        idle.append("conv_block_alphas")
    if idle:
        warnings.append(
            f"{', '.join(idle)} {'is' if len(idle) == 1 else 'are'} not used: Kohya reads "
            "block alphas and conv dims only together with block_dims or block learning-rate "
            "weights, and conv alphas only with conv_block_dims"
        )
    return errors, warnings


def _dim_from_weights(cfg: TrainingConfig) -> list[Problem]:
    if not cfg.dim_from_weights:
        return []
    if not cfg.network_weights.strip():
        return [
            Problem(
                "dim_from_weights",
                "needs a LoRA file in network_weights to read the ranks "
                "from; choose one or turn dim_from_weights off",
            )
        ]
    if cfg.LoRA_type in ALGOS:
        return [
            Problem(
                "dim_from_weights",
                f"works with LoRA type Standard or Kohya LoCon, not "
                f"{cfg.LoRA_type!r}; turn it off (the ranks must then match the file)",
            )
        ]
    return []


def _lycoris(cfg: TrainingConfig) -> tuple[list[Problem], list[str]]:
    from trainer.config.specs import FIELDS

    errors: list[Problem] = []
    warnings: list[str] = []
    options = [k for k in OPTION_DEFAULTS if k != "preset"]
    changed = [k for k in options if k not in _QUIET and getattr(cfg, k) != FIELDS[k].default]
    if cfg.LoRA_type not in ALGOS:
        changed += ["LyCORIS_preset"] if cfg.LyCORIS_preset != FIELDS["LyCORIS_preset"].default else []
        if changed:
            warnings.append(
                f"{', '.join(changed)} only apply to the LyCORIS LoRA types; "
                f"with '{cfg.LoRA_type}' they are ignored"
            )
        return errors, warnings
    preset = cfg.LyCORIS_preset.strip()
    from trainer.config.settings.network import LYCORIS_PRESETS

    if preset not in LYCORIS_PRESETS and not preset.lower().endswith(".toml"):
        errors.append(
            Problem(
                "LyCORIS_preset",
                f"{preset!r} is neither a preset name "
                f"({', '.join(LYCORIS_PRESETS)}) nor a LyCORIS preset .toml file",
            )
        )
    unused = [k for k in changed if k not in TYPE_OPTIONS[cfg.LoRA_type]]
    if unused:
        warnings.append(
            f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used by "
            f"{cfg.LoRA_type} (the Kohya GUI does not pass {'it' if len(unused) == 1 else 'them'}); "
            "ignored"
        )
    if cfg.LoRA_type == "LyCORIS/DyLoRA":
        for key in ("network_dim", "conv_dim"):
            if getattr(cfg, key) % cfg.unit:
                errors.append(
                    Problem(
                        key,
                        f"{getattr(cfg, key)} is not a multiple of the DyLoRA unit "
                        f"{cfg.unit}; DyLoRA trains the rank in steps of the unit",
                    )
                )
    return errors, warnings


def network_shape_checks(cfg: TrainingConfig) -> tuple[list[Problem], list[str]]:
    """Every rule of this module: (errors, warnings)."""
    errors, warnings = _block_dims(cfg)
    errors.extend(_dim_from_weights(cfg))
    more_errors, more_warnings = _lycoris(cfg)
    return errors + more_errors, warnings + more_warnings
