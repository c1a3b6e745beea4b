"""Optimizers and learning-rate schedulers by their Kohya names.

`optimizer_args` and `lr_scheduler_args` are parsed as data (trainer.config.rules.optimizer_args), never
evaluated; trainer.config.rules.schedules lists the arguments each schedule takes. Each optimizer
comes from the library Kohya uses for it:

| Kohya name                           | class                                       | Kohya adds        |
|--------------------------------------|---------------------------------------------|-------------------|
| AdamW                                | torch.optim.AdamW                           | fused (CUDA, CPU) |
| AdamW8bit                            | bitsandbytes.optim.AdamW8bit                |                   |
| PagedAdamW8bit                       | bitsandbytes.optim.PagedAdamW8bit           |                   |
| PagedAdamW32bit                      | bitsandbytes.optim.PagedAdamW32bit          |                   |
| Adafactor                            | transformers.optimization.Adafactor         | relative_step=True|
| Lion                                 | lion_pytorch.Lion                           |                   |
| Lion8bit                             | bitsandbytes.optim.Lion8bit                 |                   |
| PagedLion8bit                        | bitsandbytes.optim.PagedLion8bit            |                   |
| SGDNesterov                          | torch.optim.SGD(nesterov=True)              | momentum=0.9      |
| SGDNesterov8bit                      | bitsandbytes.optim.SGD8bit(nesterov=True)   | momentum=0.9      |
| Prodigy                              | prodigyopt.Prodigy                          |                   |
| DAdaptAdam                           | dadaptation.DAdaptAdam                      |                   |
| DAdaptation                          | dadaptation.experimental.DAdaptAdamPreprint |                   |
| DAdaptAdamPreprint                   | dadaptation.experimental.DAdaptAdamPreprint |                   |
| DAdaptAdaGrad                        | dadaptation.DAdaptAdaGrad                   |                   |
| DAdaptAdan                           | dadaptation.DAdaptAdan                      |                   |
| DAdaptAdanIP                         | dadaptation.experimental.DAdaptAdanIP       |                   |
| DAdaptLion                           | dadaptation.DAdaptLion                      |                   |
| DAdaptSGD                            | dadaptation.DAdaptSGD                       |                   |
| AdamWScheduleFree                    | schedulefree.AdamWScheduleFree              | constant schedule |
| RAdamScheduleFree                    | schedulefree.RAdamScheduleFree              | constant schedule |
| SGDScheduleFree                      | schedulefree.SGDScheduleFree                | constant schedule |
| bitsandbytes.optim.AdEMAMix8bit      | (the class named)                           |                   |
| bitsandbytes.optim.PagedAdEMAMix8bit | (the class named)                           |                   |
| pytorch_optimizer.CAME               | (the class named)                           |                   |
| prodigyplus.ProdigyPlusScheduleFree  | (the class named)                           | constant schedule |

Adafactor with relative_step=True picks its own step size: it gets lr=None and its
schedule is transformers' AdafactorSchedule (which reports that step size as the LR).
Schedule-free optimizers train an average of their steps: they follow no LR schedule, and
`averaged_weights` puts the average into the LoRA while it is saved or sampled.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

import torch

from trainer.config import ConfigError, Problem
from trainer.config.rules.optimizer_args import adafactor_kwargs, parse_args_text
from trainer.config.rules.schedules import lr_factor, scheduler_arg_problems
from trainer.optim.fp32_math import fp32_optimizer_math, needs_fp32_math


def parse_optimizer_args(text: str) -> dict[str, Any]:
    """'weight_decay=0.01 betas=0.9,0.99' -> {"weight_decay": 0.01, "betas": (0.9, 0.99)}."""
    try:
        return parse_args_text(text)
    except ValueError as exc:
        raise ConfigError([Problem("optimizer_args", str(exc))]) from None


def parse_scheduler_args(text: str) -> dict[str, Any]:
    """'min_lr_rate=0.1' -> {"min_lr_rate": 0.1}, read like optimizer_args (never evaluated)."""
    try:
        return parse_args_text(text)
    except ValueError as exc:
        raise ConfigError([Problem("lr_scheduler_args", str(exc))]) from None


def _bnb(cls_name: str):
    """bitsandbytes.optim.<cls_name>, or a ConfigError saying what to install."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise ConfigError(
            [
                Problem(
                    "optimizer",
                    "the bitsandbytes optimizers need the bitsandbytes "
                    "package (an NVIDIA GPU): run `pip install bitsandbytes`, or "
                    "choose AdamW",
                )
            ]
        ) from None
    cls = getattr(bnb.optim, cls_name, None)
    if cls is None:
        raise ConfigError(
            [
                Problem(
                    "optimizer",
                    f"this bitsandbytes ({getattr(bnb, '__version__', '?')}) "
                    f"has no {cls_name}: run `pip install -U bitsandbytes`",
                )
            ]
        )
    return cls


# Kohya name -> (module, class) of those Kohya builds as class(groups, lr=lr, **optimizer_args).
_CLASSES = {
    "Lion": ("lion_pytorch", "Lion"),
    "Prodigy": ("prodigyopt", "Prodigy"),
    "DAdaptAdam": ("dadaptation", "DAdaptAdam"),
    "DAdaptAdaGrad": ("dadaptation", "DAdaptAdaGrad"),
    "DAdaptAdan": ("dadaptation", "DAdaptAdan"),
    "DAdaptLion": ("dadaptation", "DAdaptLion"),
    "DAdaptSGD": ("dadaptation", "DAdaptSGD"),
    "DAdaptation": ("dadaptation.experimental", "DAdaptAdamPreprint"),
    "DAdaptAdamPreprint": ("dadaptation.experimental", "DAdaptAdamPreprint"),
    "DAdaptAdanIP": ("dadaptation.experimental", "DAdaptAdanIP"),
    "AdamWScheduleFree": ("schedulefree", "AdamWScheduleFree"),
    "RAdamScheduleFree": ("schedulefree", "RAdamScheduleFree"),
    "SGDScheduleFree": ("schedulefree", "SGDScheduleFree"),
    "pytorch_optimizer.CAME": ("pytorch_optimizer", "CAME"),
    "prodigyplus.ProdigyPlusScheduleFree": ("prodigyplus", "ProdigyPlusScheduleFree"),
}
# Kohya name -> bitsandbytes.optim class, built the same way.
_BNB_CLASSES = {
    "AdamW8bit": "AdamW8bit",
    "PagedAdamW8bit": "PagedAdamW8bit",
    "PagedAdamW32bit": "PagedAdamW32bit",
    "Lion8bit": "Lion8bit",
    "PagedLion8bit": "PagedLion8bit",
    "bitsandbytes.optim.AdEMAMix8bit": "AdEMAMix8bit",
    "bitsandbytes.optim.PagedAdEMAMix8bit": "PagedAdEMAMix8bit",
}


def optimizer_class(name: str) -> type | None:
    """The class the optimizer `name` is built from (None for a name this trainer does not
    know). Raises ImportError or ConfigError where its package is missing."""
    if name == "AdamW":
        return torch.optim.AdamW
    if name == "SGDNesterov":
        return torch.optim.SGD
    if name in _BNB_CLASSES or name == "SGDNesterov8bit":
        return _bnb(_BNB_CLASSES.get(name, "SGD8bit"))
    if name in _CLASSES:
        module, cls_name = _CLASSES[name]
        return getattr(importlib.import_module(module), cls_name)
    if name == "Adafactor":
        from transformers.optimization import Adafactor

        return Adafactor
    return None


def _build(
    name: str, groups: list[dict], lr: float, kwargs: dict[str, Any], device: torch.device
) -> torch.optim.Optimizer:
    if name == "AdamW":
        # One fused kernel for all parameters instead of a loop over hundreds of small
        # LoRA tensors: ~7x faster on a CPU too (scripts/bench.py, BENCHMARKS.md).
        if device.type in ("cuda", "cpu") and "foreach" not in kwargs:
            kwargs.setdefault("fused", True)
        return torch.optim.AdamW(groups, lr=lr, **kwargs)
    if name in _BNB_CLASSES:
        return _bnb(_BNB_CLASSES[name])(groups, lr=lr, **kwargs)
    if name == "SGDNesterov8bit":
        kwargs.setdefault("momentum", 0.9)
        return _bnb("SGD8bit")(groups, lr=lr, nesterov=True, **kwargs)
    if name == "SGDNesterov":
        kwargs.setdefault("momentum", 0.9)
        return torch.optim.SGD(groups, lr=lr, nesterov=True, **kwargs)
    if name in _CLASSES:
        module, cls_name = _CLASSES[name]
        return getattr(importlib.import_module(module), cls_name)(groups, lr=lr, **kwargs)
    if name == "Adafactor":
        from transformers.optimization import Adafactor

        kwargs, _notes = adafactor_kwargs(kwargs)  # the notes were shown by the config check
        if kwargs["relative_step"]:
            # Its own step size: no learning rate anywhere (the schedule reports it instead).
            groups = [{k: v for k, v in g.items() if k != "lr"} for g in groups]
            return Adafactor(groups, lr=None, **kwargs)
        return Adafactor(groups, lr=lr, **kwargs)
    raise ConfigError([Problem("optimizer", f"{name!r} is not supported")])


def make_optimizer(
    name: str,
    param_groups: list[dict],
    lr: float,
    args_text: str,
    device: torch.device,
    full_fp16: bool = False,
) -> torch.optim.Optimizer:
    """The optimizer `name` over `param_groups` (each may carry its own "lr").
    `full_fp16` (fp16 LoRA weights): its math in fp32 (trainer.optim.fp32_math)."""
    kwargs = parse_optimizer_args(args_text)
    try:
        optimizer = _build(name, param_groups, lr, kwargs, device)
    except (TypeError, ValueError) as exc:
        raise ConfigError([Problem("optimizer_args", f"{args_text!r} does not fit {name}: {exc}")]) from None
    set_train_mode(optimizer)  # schedule-free: ready to step, as sd-scripts leaves it
    if full_fp16 and needs_fp32_math(optimizer):
        fp32_optimizer_math(optimizer)  # fp16 Adam math turns small gradients into -inf weights
    return optimizer


def _schedule_free(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer | None:
    """The schedule-free optimizer inside accelerate's wrapper, or None for any other.

    They are the ones with train() and eval() (torch's own optimizers have neither)."""
    inner = getattr(optimizer, "optimizer", optimizer)
    return (
        inner if callable(getattr(inner, "train", None)) and callable(getattr(inner, "eval", None)) else None
    )


def set_train_mode(optimizer: torch.optim.Optimizer) -> None:
    """Put a schedule-free optimizer's training point into the parameters (its train());
    it refuses to step otherwise. A no-op for other optimizers."""
    inner = _schedule_free(optimizer)
    if inner is not None:
        inner.train()


@contextlib.contextmanager
def averaged_weights(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Inside, the LoRA holds the weights to save or sample: a schedule-free optimizer's
    average (eval()), which is the model it trains, not the point its gradients are taken
    at; back to training (train()) after, as sd-scripts does around each save and sample.
    A no-op for other optimizers."""
    inner = _schedule_free(optimizer)
    if inner is None:
        yield
        return
    inner.eval()
    try:
        yield
    finally:
        inner.train()


def uses_own_step_size(optimizer: torch.optim.Optimizer) -> bool:
    """True for Adafactor with relative_step on: its LR comes from the optimizer itself."""
    from transformers.optimization import Adafactor

    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper
    return isinstance(inner, Adafactor) and bool(inner.defaults.get("relative_step"))


def _adafactor_schedule(optimizer: torch.optim.Optimizer, initial_lr: float):
    """transformers' AdafactorSchedule, reporting one float per group, frozen groups included.

    The original reads the step size of groups whose first parameter has a gradient and
    skips the others, which misaligns the list (or fails on an emptied group once the
    text encoder stops training); a group without gradients keeps its last value here.
    """
    from transformers.optimization import AdafactorSchedule

    class Schedule(AdafactorSchedule):
        def get_lr(self):
            opt = self.optimizer
            lrs = []
            for i, group in enumerate(opt.param_groups):
                params = group["params"]
                if params and params[0].grad is not None:
                    lrs.append(float(opt._get_lr(group, opt.state[params[0]])))
                else:
                    last = group.get("lr")
                    lrs.append(float(last) if last is not None else float(self.base_lrs[i]))
            return lrs

    return Schedule(optimizer, initial_lr=initial_lr)


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    name: str,
    total_steps: int,
    warmup_steps: int,
    num_cycles: int = 1,
    power: float = 1.0,
    initial_lr: float = 0.0,
    args_text: str = "",
    scheduler_type: str = "",
) -> torch.optim.lr_scheduler.LRScheduler:
    """The LR scheduler `name` (trainer.config.rules.schedules's curves), AdafactorSchedule, or for a
    schedule-free optimizer a constant LR whatever `name` is (as in sd-scripts).

    The `adafactor` schedule, and any schedule with a relative-step Adafactor, is
    transformers' AdafactorSchedule: the LR it reports is the step size Adafactor chose.
    `args_text` is `lr_scheduler_args`; min_lr / lr_end in it are read against the
    optimizer's own learning rate, as transformers does. `scheduler_type`
    (lr_scheduler_type) names a PyTorch class that takes `args_text` instead.
    """
    if _schedule_free(optimizer) is not None:  # sd-scripts: a constant LR (they average instead)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    if name == "adafactor" or uses_own_step_size(optimizer):
        from transformers.optimization import Adafactor

        if not isinstance(optimizer, Adafactor):
            raise ConfigError([Problem("lr_scheduler", "'adafactor' needs the Adafactor optimizer")])
        return _adafactor_schedule(optimizer, initial_lr)
    args = parse_scheduler_args(args_text)
    if scheduler_type.strip():  # a PyTorch class by name (the config checks vetted it)
        from trainer.config.rules.torch_schedulers import make_torch_scheduler, torch_scheduler_problems

        pairs = torch_scheduler_problems(scheduler_type, args)
        if pairs:
            raise ConfigError([Problem(k, m) for k, m in pairs])
        return make_torch_scheduler(optimizer, scheduler_type, args)
    learning_rate = float(optimizer.defaults.get("lr") or initial_lr or 1.0)
    problems = scheduler_arg_problems(
        name, args, learning_rate=learning_rate, total_steps=total_steps, warmup_steps=warmup_steps
    )
    if problems:
        raise ConfigError([Problem("lr_scheduler_args", p) for p in problems])
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: lr_factor(
            s,
            name=name,
            total_steps=total_steps,
            warmup_steps=warmup_steps,
            num_cycles=num_cycles,
            power=power,
            args=args,
            learning_rate=learning_rate,
        ),
    )
