"""The estimate as a person reads it (the text dry-run's "GPU memory and time" section).

Pure Python (no torch).
"""

from __future__ import annotations

from typing import Any

_ARCH = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}
_PARTS = (
    ("weights", "model + LoRA weights"),
    ("activations", "activations"),
    ("gradients", "gradients"),
    ("optimizer_state", "optimizer state"),
    ("caches", "cached latents / text"),
    ("allocator_overhead", "allocator overhead"),
    ("cuda_context", "CUDA context"),
)


def duration_text(seconds: float) -> str:
    """3725 -> "1 h 2 min", 95 -> "1 min 35 s", 4.2 -> "4.2 s"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


_PRECISION = {"no": "fp32", "fp16": "fp16 mixed precision", "bf16": "bf16 mixed precision"}


def estimate_text(est: Any) -> str:
    w, h = est.bucket
    lines = [
        "GPU memory and time (estimate)",
        f"  {_ARCH.get(est.arch, est.arch)}, largest bucket {w}x{h}, batch {est.batch_size}, "
        f"{_PRECISION.get(est.mixed_precision, est.mixed_precision)}, "
        f"{est.trainable_params:,} trainable parameters",
        f"  Peak GPU memory: {est.peak_vram_gib:.1f} GiB "
        f"(tensors {est.allocated_peak_gib:.1f} GiB at the {est.peak_phase})",
    ]
    parts = ", ".join(
        f"{label} {est.breakdown_gib[key]:.2f}" for key, label in _PARTS if est.breakdown_gib.get(key)
    )
    lines.append(f"    {parts} (GiB)")
    if est.vram_gib:
        lines.append(f"  On {est.vram_gib:g} GiB: {est.verdict}")
    for item in est.advice:
        mark = "fits" if item["fits"] else item["verdict"]
        lines.append(f"    - {item['change']}: {item['peak_vram_gib']:.1f} GiB ({mark})")
    if est.recommended:
        lines.append(f"  Smallest change that fits: {est.recommended}")
    elif est.verdict == "does not fit":
        lines.append("  No change tried makes it fit; a GPU with more memory is needed.")
    run = f", the run about {duration_text(est.run_seconds)}" if est.run_seconds is not None else ""
    lines.append(
        f"  Time on an {est.gpu}: about {duration_text(est.seconds_per_step)} per step{run} "
        f"({est.tflop_per_step:g} TFLOP per step)"
    )
    lines.extend(f"  Note: {note}" for note in est.notes)
    return "\n".join(lines)
