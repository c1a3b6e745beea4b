"""`lr_scheduler_type`: a PyTorch scheduler class by name, as sd-scripts allows.

Kohya users write `--lr_scheduler_type CosineAnnealingLR --lr_scheduler_args T_max=1000`
(in "Additional parameters") to use one of PyTorch's own schedules. Only the classes of
`torch.optim.lr_scheduler` listed here are used (a preset never names code to import),
with their arguments from `lr_scheduler_args`, checked before anything loads. As in
sd-scripts, the class then decides the whole curve: `lr_scheduler` and the warmup are not
applied. The table is plain data, so the config checks stay free of torch.
"""

from __future__ import annotations

from typing import Any

# class name -> (required arguments, optional arguments), as torch.optim.lr_scheduler has them
TORCH_SCHEDULERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "CosineAnnealingLR": (("T_max",), ("eta_min",)),
    "CosineAnnealingWarmRestarts": (("T_0",), ("T_mult", "eta_min")),
    "StepLR": (("step_size",), ("gamma",)),
    "MultiStepLR": (("milestones",), ("gamma",)),
    "ExponentialLR": (("gamma",), ()),
    "LinearLR": ((), ("start_factor", "end_factor", "total_iters")),
    "ConstantLR": ((), ("factor", "total_iters")),
    "PolynomialLR": ((), ("total_iters", "power")),
}
_PREFIX = "torch.optim.lr_scheduler."
_WHOLE = frozenset({"T_max", "T_0", "T_mult", "step_size", "total_iters"})


def class_name(value: str) -> str:
    """'torch.optim.lr_scheduler.StepLR' or 'StepLR' -> 'StepLR'."""
    text = value.strip()
    return text.removeprefix(_PREFIX)


def torch_scheduler_problems(name: str, args: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, message) for each problem of `lr_scheduler_type` and its `lr_scheduler_args`."""
    cls = class_name(name)
    if cls not in TORCH_SCHEDULERS:
        message = (
            f"{name!r} is not one of {', '.join(TORCH_SCHEDULERS)} (PyTorch's schedulers; "
            "no other code is loaded from a preset). Leave it empty to use LR Scheduler"
        )
        return [("lr_scheduler_type", message)]
    required, optional = TORCH_SCHEDULERS[cls]
    problems = []
    for key, value in args.items():
        if key not in required + optional:
            takes = ", ".join(required + optional) or "none"
            problems.append(("lr_scheduler_args", f"{key}: is not an argument of {cls} (it takes {takes})"))
        elif key == "milestones":
            steps = value if isinstance(value, tuple) else (value,)
            if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in steps):
                problems.append(
                    (
                        "lr_scheduler_args",
                        f"milestones={value}: must be step numbers, e.g. milestones=500,1000",
                    )
                )
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(("lr_scheduler_args", f"{key}={value}: must be a number"))
        elif key in _WHOLE and (not float(value).is_integer() or value < 1):
            problems.append(
                ("lr_scheduler_args", f"{key}={value}: must be a whole number of steps, 1 or more")
            )
    for key in required:
        if key not in args:
            problems.append(
                ("lr_scheduler_args", f"{cls} needs {key}: add {key}=... to LR scheduler extra arguments")
            )
    return problems


def make_torch_scheduler(optimizer, name: str, args: dict[str, Any]):
    """The scheduler object (call after `torch_scheduler_problems` found nothing)."""
    import torch

    kwargs = {k: (int(v) if k in _WHOLE else v) for k, v in args.items()}
    return getattr(torch.optim.lr_scheduler, class_name(name))(optimizer, **kwargs)
