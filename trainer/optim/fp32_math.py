"""full_fp16: the optimizer computes in fp32 on LoRA weights stored in fp16.

With `full_fp16` the LoRA weights (and so their gradients and a plain PyTorch optimizer's
state) are fp16. Adam-like math in fp16 breaks on small gradients: the squared gradient
underflows to 0, eps (1e-8) rounds to 0 in fp16, and m / (sqrt(v) + eps) is inf, so the
weights become -inf after a step or two (reproduced on CPU with torch.optim.AdamW without
`fused`; Prodigy, DAdapt, Lion and CAME run the same kind of Python math).

`fp32_optimizer_math` makes each step run on fp32 copies: the fp16 weights and gradients
are upcast for the step, the optimizer's state is created (and, after a resume, kept) in
fp32, and the result is stored back in fp16. The weights stay fp16 between steps (the
memory full_fp16 saves on activations stays saved; the state costs fp32, as with Kohya's
fused optimizers). bitsandbytes' optimizers already compute in fp32 on fp16 weights, and
schedule-free ones swap weights outside `step`: both are left as they are.
"""

from __future__ import annotations

import types

import torch


def needs_fp32_math(optimizer: torch.optim.Optimizer) -> bool:
    """Whether `optimizer` would do its math in the fp16 weights' dtype."""
    module = type(optimizer).__module__
    schedule_free = hasattr(optimizer, "train_mode") or "schedulefree" in module.lower()
    return not (module.startswith("bitsandbytes") or schedule_free)


def fp32_optimizer_math(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Make `optimizer.step` run on fp32 copies of its fp16 parameters (see the module).
    Call it before an LR scheduler wraps the optimizer; returns the same optimizer."""
    original = optimizer.step  # bound: the class's step with PyTorch's hooks

    def step(self, *args, **kwargs):
        upcast = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.dtype != torch.float16:
                    continue
                p.data = p.data.float()
                if p.grad is not None:
                    p.grad = p.grad.float()
                for key, value in self.state.get(p, {}).items():  # fp16 after a resume
                    if key != "step" and torch.is_tensor(value) and value.dtype == torch.float16:
                        self.state[p][key] = value.float()
                upcast.append(p)
        try:
            return original(*args, **kwargs)
        finally:
            for p in upcast:
                p.data = p.data.half()
                if p.grad is not None:
                    p.grad = p.grad.half()

    optimizer.step = types.MethodType(step, optimizer)  # a bound method, as LR schedulers expect
    return optimizer
