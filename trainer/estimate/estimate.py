"""How much GPU memory and time a run needs, before anything loads: `estimate(cfg)`.

The step is measured by `fake_run.measure_step` (the run's own code on shape-only
tensors, see there) for the largest bucket the run will see, once per model and settings
(`cache`). Around it come what a real GPU adds and what the dataset scales:

- caches: the cached latents and text-encoder outputs are kept in host memory, not on
  the GPU (trainer.run.data): they add nothing here, whatever the dataset's size;
- the allocator's overhead and the CUDA context (trainer.estimate.fit).
`peak_vram_gib` is what the card must have; `allocated_peak_gib` is what
`torch.cuda.max_memory_allocated()` would report (the number the GPU test compares).
Against a VRAM size: the verdict (fit.verdict), and `advice`, the smallest changes that
make the run fit (trainer.estimate.advice).

Imports torch (through fake_run), trainer.config, trainer.models, trainer.data (dataset TOML).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from trainer.estimate import cache as step_cache
from trainer.estimate.fit import ALLOCATOR_OVERHEAD, CUDA_CONTEXT_GIB, GIB, needed_bytes, verdict
from trainer.estimate.gpus import find_gpu, seconds_per_step

NOTES = (
    "An estimate: the run's own model, LoRA, optimizer and step ran on shape-only tensors "
    "(nothing was loaded); the CUDA context (0.6 GiB) and allocator overhead (+10 %) are "
    "rules of thumb, and the time assumes typical clocks and no other work on the GPU.",
)


@dataclass
class Estimate:
    """The estimate of one run; `to_json` for the CLI and the GUI, `to_text` for people."""

    arch: str
    bucket: list[int]  # the largest bucket [width, height]
    batch_size: int
    mixed_precision: str
    trainable_params: int
    peak_vram_gib: float  # what the GPU must have
    allocated_peak_gib: float  # torch.cuda.max_memory_allocated()
    allocated_peak_bytes: int
    step_peak_gib: float
    setup_peak_gib: float  # while the caches are built (the VAE / text encoders still on the GPU)
    peak_phase: str
    breakdown_gib: dict[str, float]
    tflop_per_step: float
    gpu: str
    seconds_per_step: float
    run_seconds: float | None  # None without a plan (no step count)
    vram_gib: float | None = None
    fits: bool | None = None
    verdict: str | None = None  # "fits", "tight", "does not fit"
    advice: list[dict[str, Any]] = field(default_factory=list)
    recommended: str | None = None
    notes: list[str] = field(default_factory=list)
    estimate_seconds: float = 0.0
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_text(self) -> str:
        from trainer.estimate.report import estimate_text

        return estimate_text(self)


def largest_bucket(cfg: Any, plan: Any = None) -> tuple[int, int]:
    """(width, height) of the largest-area bucket of the plan, else of max_resolution."""
    from trainer.config import parse_resolution

    buckets = [tuple(b["resolution"]) for b in (getattr(plan, "buckets", None) or [])]
    if buckets:
        return max(buckets, key=lambda wh: (wh[0] * wh[1], max(wh)))
    w, h = parse_resolution(cfg.max_resolution)
    return int(w), int(h)


def _versions() -> str:
    """The libraries the measured step followed (read without importing them: a cached
    estimate needs no torch)."""
    from importlib.metadata import PackageNotFoundError, version

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    return " ".join(f"{name} {of(name)}" for name in ("torch", "diffusers", "transformers", "lycoris-lora"))


def measured_step(cfg: Any, bucket: tuple[int, int], use_cache: bool = True) -> tuple[dict[str, Any], bool]:
    """The measured step of these settings (fake_run.StepMeasure as a dict), and whether it
    came from the cache."""
    from trainer.estimate.fake_models import model_configs

    mc = model_configs(cfg.pretrained_model_name_or_path, v_parameterization=cfg.v_parameterization)
    key = step_cache.step_key(mc.identity, cfg.model_dump(), bucket, _versions())
    if use_cache and (hit := step_cache.load(key)) is not None:
        return hit, True
    from trainer.estimate.fake_run import measure_step

    started = time.perf_counter()
    value = asdict(measure_step(cfg, mc, bucket))
    value["arch"] = mc.arch
    value["seconds"] = round(time.perf_counter() - started, 2)
    step_cache.store(key, value)
    return value, False


def estimate(
    cfg: Any,
    vram_gib: float | None = None,
    *,
    gpu: str | None = None,
    plan: Any = None,
    advice: bool = True,
    use_cache: bool = True,
) -> Estimate:
    """Peak GPU memory, fit and time of the run `cfg` (see the module docstring).

    `plan`: the dry-run plan (trainer.plan.training_plan.Plan) for the largest bucket, the
    image count and the number of steps; without it, max_resolution and no run time.
    Raises trainer.models.ModelLoadError for a model that cannot be read, ConfigError for
    settings that cannot be built."""
    from trainer.data.dataset_config import apply_dataset_settings, read_dataset_config

    started = time.perf_counter()
    if cfg.dataset_config.strip():  # a dataset TOML's batch size and resolution
        cfg, _ = apply_dataset_settings(cfg, read_dataset_config(cfg.dataset_config.strip()))
    bucket = largest_bucket(cfg, plan)
    step, cached = measured_step(cfg, bucket, use_cache)
    result = _assemble(cfg, step, bucket, vram_gib, gpu, plan)
    result.cached = cached
    if advice and result.verdict not in (None, "fits"):
        from trainer.estimate.advice import advise

        def again(changed: Any, changed_plan: Any) -> Estimate:
            return estimate(changed, vram_gib, gpu=gpu, plan=changed_plan, advice=False, use_cache=use_cache)

        result.advice, result.recommended = advise(cfg, result, again, plan=plan)
    result.estimate_seconds = round(time.perf_counter() - started, 2)
    return result


def _assemble(
    cfg: Any,
    step: dict[str, Any],
    bucket: tuple[int, int],
    vram_gib: float | None,
    gpu_name: str | None,
    plan: Any,
) -> Estimate:
    """An Estimate from one measured step, the dataset's size and the GPU."""
    # The latent and text caches live in host memory (trainer.run.data); only each step's
    # batch comes to the GPU, and the measured step holds it.
    caches = 0
    allocated = max(step["step_peak"], step["setup_peak"]) + caches
    needed = needed_bytes(allocated)
    setup_first = step["setup_peak"] > step["step_peak"]
    split = step["setup_split"] if setup_first else step["split"]
    breakdown = {
        "weights": split["weights"] / GIB,
        "gradients": split["gradients"] / GIB,
        "optimizer_state": split["optimizer_state"] / GIB,
        "activations": split["activations"] / GIB,
        "caches": caches / GIB,
        "allocator_overhead": allocated * ALLOCATOR_OVERHEAD / GIB,
        "cuda_context": CUDA_CONTEXT_GIB,
    }
    if setup_first:
        phase = "setup: the caches are built while the VAE and text encoders are still on the GPU"
    else:
        phase = f"training step: {step['peak_phase']}"
    card = find_gpu(gpu_name, vram_gib)
    sps = seconds_per_step(step["flops"], step["ops"], step["bytes_written"], card, cfg.mixed_precision)
    micro_steps = (
        plan.total_steps * max(1, int(cfg.gradient_accumulation_steps)) if plan is not None else None
    )
    notes = list(NOTES) + list(step.get("notes", []))
    if plan is None:
        notes.append(
            "No dataset plan: max_resolution is the largest bucket, caches are counted for one batch."
        )
    if int(getattr(cfg, "num_processes", 1) or 1) > 1:
        notes.append("Each GPU of a multi-GPU run needs this much.")
    result = Estimate(
        arch=step["arch"],
        bucket=list(bucket),
        batch_size=int(cfg.train_batch_size),
        mixed_precision=cfg.mixed_precision,
        trainable_params=int(step["trainable_params"]),
        peak_vram_gib=round(needed / GIB, 2),
        allocated_peak_gib=round(allocated / GIB, 2),
        allocated_peak_bytes=int(allocated),
        step_peak_gib=round(step["step_peak"] / GIB, 2),
        setup_peak_gib=round(step["setup_peak"] / GIB, 2),
        peak_phase=phase,
        breakdown_gib={k: round(v, 3) for k, v in breakdown.items()},
        tflop_per_step=round(step["flops"] / 1e12, 2),
        gpu=card.name,
        seconds_per_step=round(sps, 3),
        run_seconds=round(sps * micro_steps) if micro_steps is not None else None,
        notes=notes,
    )
    if vram_gib:
        result.vram_gib = float(vram_gib)
        result.verdict = verdict(needed / GIB, float(vram_gib))
        result.fits = result.verdict != "does not fit"
    return result
