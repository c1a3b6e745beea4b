"""Optimizers by their Kohya names, with `optimizer_args` parsed as data (never evaluated)."""
from __future__ import annotations

from typing import Any

import torch

from .config import ConfigError, Problem


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if "," in text:
        return tuple(_value(p) for p in text.split(",") if p)
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_optimizer_args(text: str) -> dict[str, Any]:
    """'weight_decay=0.01 betas=0.9,0.99' -> {"weight_decay": 0.01, "betas": (0.9, 0.99)}."""
    out: dict[str, Any] = {}
    for part in text.split():
        key, sep, value = part.partition("=")
        if not sep or not key.isidentifier() or not value:
            raise ConfigError([Problem("optimizer_args", f"{part!r} is not key=value "
                                       "(for example weight_decay=0.01)")])
        out[key] = _value(value)
    return out


def make_optimizer(name: str, param_groups: list[dict], lr: float, args_text: str,
                   device: torch.device) -> torch.optim.Optimizer:
    kwargs = parse_optimizer_args(args_text)
    try:
        if name == "AdamW":
            if device.type == "cuda":
                kwargs.setdefault("fused", True)
            return torch.optim.AdamW(param_groups, lr=lr, **kwargs)
        if name == "AdamW8bit":
            import bitsandbytes as bnb
            return bnb.optim.AdamW8bit(param_groups, lr=lr, **kwargs)
    except TypeError as exc:
        raise ConfigError([Problem("optimizer_args", f"{args_text!r} does not fit {name}: {exc}")]) from None
    raise ConfigError([Problem("optimizer", f"{name!r} is not supported")])
