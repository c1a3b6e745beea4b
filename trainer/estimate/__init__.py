"""How much GPU memory and time a run needs, found before anything loads.

    est = estimate(cfg, vram_gib=12, plan=plan)   # trainer.estimate.estimate.Estimate
    est.peak_vram_gib, est.verdict, est.advice, est.seconds_per_step, est.to_json()

The run's own code (trainer.run.train.Run's model loading rules, network, optimizer and
step) runs once on shape-only meta tensors, with CUDA's autocast dtypes and attention
kernels; a tracker counts the live tensor bytes as the CUDA allocator would and
FlopCounterMode the step's FLOPs. So the estimate follows the code, not a formula.

- estimate.py: `estimate(cfg, vram_gib)`, the Estimate; fit.py: overheads and the verdict.
- fake_run.py: the Run on fake data, measured; fake_models.py: the model from its configs.
- tracker.py: live bytes and the peak; meta_cache.py: faster meta shapes.
- autocast.py: CUDA autocast's policy on meta tensors; standins.py: "cuda" on the meta
  device, CUDA's attention kernels, bitsandbytes' optimizer state.
- advice.py: the smallest change that fits; gpus.py: GPUs and time; report.py: text;
  cache.py: measured steps kept by model and settings.
- `fit_warning` / `gpu_fit_warning`: one sentence for the preflight when a run certainly
  does not fit (the second reads the size of this machine's GPU).

May import torch, diffusers, transformers and trainer.config / models / network / optim /
run / data / text; nothing imports it but the CLI, trainer.api and its own tests. This
module imports no torch itself (the measuring starts at the first estimate).
"""

from __future__ import annotations

from typing import Any

from trainer.estimate.estimate import Estimate, estimate

__all__ = ["Estimate", "dry_run_section", "estimate", "fit_warning", "gpu_fit_warning", "this_gpu_gib"]


def dry_run_section(cfg: Any, plan: Any, vram_gib: float | None, gpu: str | None) -> tuple[dict, str]:
    """The dry-run's "estimate" (JSON) and its text. A model or settings the estimate cannot
    build give {"error": why} (the plan itself stays valid); an unknown GPU name raises
    ValueError, which the CLI reports as a usage error."""
    from trainer.config import ConfigError
    from trainer.estimate.gpus import find_gpu
    from trainer.models import ModelLoadError

    find_gpu(gpu)  # an unknown name is the user's typo: say so before seconds of work
    if vram_gib is None:
        vram_gib = this_gpu_gib()  # the card present, if any
    try:
        est = estimate(cfg, vram_gib, gpu=gpu, plan=plan)
    except (ModelLoadError, ConfigError, ValueError) as exc:
        return {"error": str(exc)}, f"GPU memory and time: no estimate ({exc})"
    return est.to_json(), est.to_text()


def fit_warning(cfg: Any, vram_gib: float, plan: Any = None, advice: bool = True) -> str | None:
    """A warning when the run certainly does not fit `vram_gib` (it needs more even without
    the allocator overhead and the CUDA context), else None; with `advice`, naming the
    smallest change that fits. Never raises: a run the estimate cannot build is left to the
    run's own checks."""
    try:
        est = estimate(cfg, vram_gib, plan=plan, advice=advice)
    except Exception:  # noqa: BLE001 - the warning is optional; the run reports real errors
        return None
    if est.allocated_peak_bytes <= vram_gib * 2**30:
        return None
    change = f" Smallest change that fits: {est.recommended}." if est.recommended else ""
    return (
        f"This run needs about {est.peak_vram_gib:.1f} GiB of GPU memory and this GPU has "
        f"{vram_gib:.1f} GiB: it will run out of memory.{change}"
    )


def this_gpu_gib() -> float | None:
    """The memory of this machine's first CUDA GPU in GiB (None without one)."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / 2**30


def gpu_fit_warning(cfg: Any, plan: Any = None) -> str | None:
    """fit_warning for this machine's first CUDA GPU (None without one). For the preflight:
    `if (w := gpu_fit_warning(cfg, plan)): warnings.append(w)`. It costs the estimate's
    seconds once per settings (then it is cached), before any model loads."""
    total = this_gpu_gib()
    return None if total is None else fit_warning(cfg, total, plan=plan)
