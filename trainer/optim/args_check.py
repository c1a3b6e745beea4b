"""`optimizer_args` tried before any model loads: each name against the optimizer's
signature, then the optimizer built and stepped once on a tiny dummy parameter.

Without this, "betas=oops" or an argument the class does not take was found only after
the model had loaded and the latents were cached. Run by trainer.run.preflight_options.
"""

from __future__ import annotations

import contextlib
import inspect
import io

import torch

from trainer.config import ConfigError
from trainer.config.rules.optimizer_args import BITSANDBYTES, parse_args_text
from trainer.optim.optimizers import make_optimizer, optimizer_class


def _unknown_arguments(cls: type, args: dict) -> tuple[list[str], list[str]]:
    """(the names in `args` that `cls` does not take, the names it takes); nothing is unknown
    to a class that takes any keyword."""
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # no signature to read: the dry construction decides
        return [], []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return [], []
    takes = [n for n in parameters if n not in ("self", "params")]
    return [k for k in args if k not in takes], takes


def optimizer_args_problems(name: str, args_text: str, learning_rate: float) -> list[str]:
    """Why `optimizer_args` cannot build the optimizer `name`, or []. A missing package or an
    unreadable pair is left to the checks that name those."""
    if not args_text.strip():
        return []
    try:
        args = parse_args_text(args_text)
        cls = optimizer_class(name)
    except (ValueError, ImportError, ConfigError):
        return []
    if cls is None:
        return []
    unknown, takes = _unknown_arguments(cls, args)
    if unknown:
        return [
            f"{', '.join(unknown)} {'is not an argument' if len(unknown) == 1 else 'are not arguments'} "
            f"of {name} ({cls.__module__}.{cls.__name__} takes {', '.join(takes)})"
        ]
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # some print notes; the dry run prints JSON
            _build_and_step(name, args_text, learning_rate)
    except ConfigError as exc:
        return [p.message for p in exc.problems]
    except Exception as exc:  # noqa: BLE001 - whatever the class raises, said before the model loads
        return [f"{args_text!r} does not fit {name}: {type(exc).__name__}: {exc}"]
    return []


def _build_and_step(name: str, args_text: str, learning_rate: float) -> None:
    """Build the optimizer over one tiny parameter and take one step (on the CPU)."""
    dummy = torch.nn.Parameter(torch.full((2, 2), 0.5))
    optimizer = make_optimizer(
        name, [{"params": [dummy], "lr": learning_rate}], learning_rate, args_text, torch.device("cpu")
    )
    if name not in BITSANDBYTES:  # their kernels need the parameters on the GPU
        dummy.grad = torch.full_like(dummy, 0.1)
        optimizer.step()
