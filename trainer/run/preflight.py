"""Checks of the disk and the device, run before any model loads.

Together with the schema's checks and the dataset plan, these make sure a run that
starts can finish: wrong precision for the hardware, a missing optional package, an
output folder that cannot be written, a model path that does not exist.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from trainer.config import Problem, TrainingConfig
from trainer.config.checks import output_name_problem
from trainer.config.rules.optimizer_args import BITSANDBYTES


def _cuda() -> tuple[bool, bool]:
    """(CUDA available, bf16 supported)."""
    import torch

    if not torch.cuda.is_available():
        return False, False
    return True, bool(torch.cuda.is_bf16_supported())


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def _writable_dir(path: Path) -> str | None:
    """Why `path` cannot hold our files (it is created if missing), or None."""
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK):
        return f"{existing} is read-only; choose a folder you can write to"
    return None


def run_preflight(cfg: TrainingConfig) -> tuple[list[Problem], list[str]]:
    """(problems that block the run, warnings) for this machine and these paths.

    A run passes the settings of its ResolvedDataset (`data.cfg`: a dataset TOML's values
    applied); the GUI passes the form's config. Nothing here reads the dataset."""
    problems: list[Problem] = []
    warnings: list[str] = []
    cuda, bf16_ok = _cuda()
    problems += _device_problems(cfg, cuda, bf16_ok)
    if cfg.num_processes > 1 and not cuda:
        warnings.append(
            f"num_processes {cfg.num_processes} without an NVIDIA GPU: the processes "
            "train on the CPU, which is for trying the setup, not for speed"
        )
    from trainer.run.preflight_options import option_preflight, option_warnings  # packages, fp8, GPUs

    problems += option_preflight(cfg, cuda)
    warnings += option_warnings(cfg)
    for check in (_model_checks, _output_checks):
        more_problems, more_warnings = check(cfg)
        problems += more_problems
        warnings += more_warnings
    problems += _file_problems(cfg)
    return problems, warnings


def _device_problems(cfg: TrainingConfig, cuda: bool, bf16_ok: bool) -> list[Problem]:
    """Precision, bitsandbytes and xformers against this machine's GPU and packages."""
    problems: list[Problem] = []
    if cfg.mixed_precision == "fp16" and not cuda:
        problems.append(
            Problem(
                "mixed_precision",
                "fp16 needs an NVIDIA GPU and none was found; choose 'no' on this machine",
                needs_gpu=True,
            )
        )
    if cfg.mixed_precision == "bf16" and cuda and not bf16_ok:
        problems.append(
            Problem(
                "mixed_precision",
                "this GPU has no bf16 support (it needs an RTX 30 series or newer); choose 'fp16'",
            )
        )
    if cfg.optimizer in BITSANDBYTES:
        if not cuda:
            problems.append(
                Problem(
                    "optimizer",
                    f"{cfg.optimizer} needs an NVIDIA GPU (bitsandbytes); choose 'AdamW' on this machine",
                    needs_gpu=True,
                )
            )
        elif importlib.util.find_spec("bitsandbytes") is None:
            problems.append(
                Problem(
                    "optimizer",
                    f"{cfg.optimizer} needs the bitsandbytes package: "
                    "run `pip install bitsandbytes` in .venv, or choose 'AdamW'",
                )
            )
    if cfg.xformers == "xformers" and importlib.util.find_spec("xformers") is None:
        problems.append(
            Problem(
                "xformers",
                "xformers is not installed; choose 'sdpa' (as fast on "
                "current PyTorch) or install the optional xformers extra",
            )
        )
    return problems


def _model_checks(cfg: TrainingConfig) -> tuple[list[Problem], list[str]]:
    """The base model (detected, no weights loaded), the VAE and the LoRA to continue from."""
    problems: list[Problem] = []
    warnings: list[str] = []
    model = cfg.pretrained_model_name_or_path.strip()
    if model:
        from trainer.models import ModelLoadError, detect_model

        try:
            info = detect_model(model)
            if info.arch == "sd2" and not info.v_prediction_hint:  # the one case with advice in it
                warnings.append(info.message)
        except ModelLoadError as exc:
            problems.append(Problem("pretrained_model_name_or_path", str(exc)))
    if cfg.vae.strip() and not Path(cfg.vae).exists():
        problems.append(Problem("vae", f"{cfg.vae} does not exist"))
    if cfg.network_weights.strip() and not Path(cfg.network_weights).is_file():
        problems.append(Problem("network_weights", f"{cfg.network_weights} is not a file"))
    return problems, warnings


def _output_checks(cfg: TrainingConfig) -> tuple[list[Problem], list[str]]:
    """The output folder: writable, not inside the image folders, whether the final file exists."""
    if not cfg.output_dir.strip():
        return [], []
    problems: list[Problem] = []
    warnings: list[str] = []
    out = Path(cfg.output_dir)
    why = _writable_dir(out)
    if why:
        problems.append(Problem("output_dir", why))
    for key, data in (
        ("train_data_dir", cfg.train_data_dir.strip()),
        ("reg_data_dir", cfg.reg_data_dir.strip()),
    ):
        if data and _inside(out, Path(data)):
            problems.append(
                Problem(
                    "output_dir",
                    f"is inside the {key} folder {data}; LoRA files "
                    "there would be read as training data. Choose another folder",
                )
            )
    if output_name_problem(cfg.output_name) is None:
        final = out / f"{cfg.output_name}.safetensors"
        if final.exists():
            warnings.append(f"{final} already exists and will be replaced at the end of training")
    return problems, warnings


def _file_problems(cfg: TrainingConfig) -> list[Problem]:
    """Sample prompts and sampler, the state to resume from, the TensorBoard folder."""
    problems: list[Problem] = []
    if cfg.sample_prompts.strip():
        from trainer.sampling.prompts import read_sample_prompts

        try:
            read_sample_prompts(cfg.sample_prompts)
        except ValueError as exc:
            problems.append(Problem("sample_prompts", str(exc)))
        from trainer.sampling.preview import sampler_problem

        why = sampler_problem(cfg.sample_sampler)
        if why:
            problems.append(Problem("sample_sampler", why))
    if cfg.resume.strip():  # whether it fits the config is checked with the dataset (trainer.run.state)
        from trainer.run.state import read_state_info

        try:
            read_state_info(cfg.resume)
        except ValueError as exc:
            problems.append(Problem("resume", str(exc)))
    if cfg.logging_dir.strip():
        why = _writable_dir(Path(cfg.logging_dir))
        if why:
            problems.append(Problem("logging_dir", why))
    return problems
