"""Device and package checks for the optimizer, network and memory options (before loading).

Each problem says what to install or choose instead; run by `trainer.run.preflight`.
"""

from __future__ import annotations

import importlib.util

from trainer.config import Problem, TrainingConfig
from trainer.config.rules.optimizer_args import BITSANDBYTES

# Optimizer -> (module to import, pip package); bitsandbytes is checked with the GPU (trainer.run.preflight).
_DADAPT = ("dadaptation", "dadaptation")
_SCHEDULE_FREE = ("schedulefree", "schedulefree")
_OPTIMIZER_PACKAGES = {
    "Lion": ("lion_pytorch", "lion-pytorch"),
    "Prodigy": ("prodigyopt", "prodigyopt"),
    "DAdaptAdam": _DADAPT,
    "DAdaptation": _DADAPT,
    "DAdaptAdamPreprint": _DADAPT,
    "DAdaptAdaGrad": _DADAPT,
    "DAdaptAdan": _DADAPT,
    "DAdaptAdanIP": _DADAPT,
    "DAdaptLion": _DADAPT,
    "DAdaptSGD": _DADAPT,
    "AdamWScheduleFree": _SCHEDULE_FREE,
    "RAdamScheduleFree": _SCHEDULE_FREE,
    "SGDScheduleFree": _SCHEDULE_FREE,
    "pytorch_optimizer.CAME": ("pytorch_optimizer", "pytorch_optimizer"),
    "prodigyplus.ProdigyPlusScheduleFree": ("prodigyplus", "prodigy-plus-schedule-free"),
}


def option_preflight(cfg: TrainingConfig, cuda: bool) -> list[Problem]:
    """Problems of this machine with the chosen optimizer, LoRA type and fp8_base."""
    problems: list[Problem] = []
    needed = _OPTIMIZER_PACKAGES.get(cfg.optimizer)
    if needed and importlib.util.find_spec(needed[0]) is None:
        problems.append(
            Problem(
                "optimizer",
                f"{cfg.optimizer} needs the {needed[1]} package: run "
                f"`pip install {needed[1]}` in .venv, or choose AdamW",
            )
        )
    elif cfg.optimizer not in BITSANDBYTES or cuda:  # bitsandbytes without a GPU: preflight says so
        from trainer.optim.args_check import optimizer_args_problems

        problems.extend(
            Problem("optimizer_args", why)
            for why in optimizer_args_problems(cfg.optimizer, cfg.optimizer_args, cfg.learning_rate)
        )
    if cfg.LoRA_type.startswith("LyCORIS/") and importlib.util.find_spec("lycoris") is None:
        problems.append(
            Problem(
                "LoRA_type",
                f"{cfg.LoRA_type} needs the lycoris-lora package: run "
                "`pip install lycoris-lora` in .venv, or choose Standard",
            )
        )
    if (
        cfg.LoRA_type.startswith("LyCORIS/")
        and cfg.LyCORIS_preset.strip().lower().endswith(".toml")
        and importlib.util.find_spec("lycoris") is not None
    ):
        from trainer.network.lycoris_net import read_preset_file

        try:
            read_preset_file(cfg.LyCORIS_preset.strip())
        except ValueError as exc:
            problems.append(Problem("LyCORIS_preset", str(exc)))
    problems.extend(_launch_problems(cfg, cuda))
    if cfg.fp8_base:
        import torch

        if not hasattr(torch, "float8_e4m3fn"):
            problems.append(
                Problem(
                    "fp8_base",
                    f"this PyTorch ({torch.__version__}) has no fp8 type; "
                    "update PyTorch or turn fp8_base off",
                )
            )
        elif not cuda:
            problems.append(
                Problem(
                    "fp8_base",
                    "fp8 base weights need an NVIDIA GPU and none was found; "
                    "turn fp8_base off on this machine",
                    needs_gpu=True,
                )
            )
        elif why := fp8_compile_blocked(cfg):
            problems.append(Problem("torch_compile", why))
    return problems


FP8_COMPILE_CAPABILITY = (8, 9)  # Triton's fp8 (e4m3) kernels: Ada / Hopper and later


def fp8_compile_blocked(cfg: TrainingConfig) -> str | None:
    """Why fp8 base weights cannot be compiled on this GPU (`torch_compile` on a GPU
    before compute capability 8.9, e.g. an RTX 30xx or A100), or None."""
    import torch

    if not cfg.torch_compile or not torch.cuda.is_available():
        return None
    capability = tuple(torch.cuda.get_device_capability())
    if capability >= FP8_COMPILE_CAPABILITY:
        return None
    return (
        f"torch_compile with fp8_base needs a GPU of compute capability 8.9 or newer "
        f"(RTX 40xx, L4, H100); this one is {capability[0]}.{capability[1]}: "
        "turn torch_compile or fp8_base off"
    )


def option_warnings(cfg: TrainingConfig) -> list[str]:
    """Advice on memory options that work but cost more than they save."""
    if cfg.fp8_base and not cfg.gradient_checkpointing:
        return [
            "fp8_base without gradient_checkpointing: autocast keeps an fp16/bf16 copy of "
            "each fp8 weight for the backward pass, so the peak memory can exceed plain "
            "fp16. Turn on gradient_checkpointing to get fp8's savings"
        ]
    return []


def _launch_problems(cfg: TrainingConfig, cuda: bool) -> list[Problem]:
    """num_processes / gpu_ids against the GPUs this machine has (before starting any)."""
    from trainer.config.checks import gpu_id_list
    from trainer.launch import under_launcher

    if cfg.num_processes <= 1 or not cuda or under_launcher():
        return []
    import torch

    count = torch.cuda.device_count()
    ids = [int(i) for i in gpu_id_list(cfg.gpu_ids)]  # digits: the config check made sure
    missing = [i for i in ids if i >= count]
    if missing:
        return [
            Problem(
                "gpu_ids",
                f"GPU {', '.join(map(str, missing))} does not exist: this machine "
                f"has {count} (numbered 0-{count - 1})",
            )
        ]
    if not ids and cfg.num_processes > count:
        return [
            Problem(
                "num_processes",
                f"{cfg.num_processes} processes need {cfg.num_processes} GPUs "
                f"and this machine has {count}; set num_processes to {count} or less",
            )
        ]
    return []
