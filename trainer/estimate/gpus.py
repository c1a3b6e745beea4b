"""Common GPUs, their memory and peak throughput, and seconds per step from a step's work.

Peak numbers are NVIDIA's published dense tensor-core rates for fp16/bf16 with fp32
accumulation (what PyTorch's matmuls and convolutions use; GeForce cards run those at half
their fp16-accumulate rate) and the plain fp32 rate (mixed_precision "no").

A step's time is an estimate, never a measurement: the larger of
- the GPU's work: the step's FLOPs (FlopCounterMode over forward, backward and any
  recomputation) at `UTILISATION` of the card's peak, plus its memory traffic (every
  tensor the step makes is written once and read at least once) at `BANDWIDTH_SHARE` of
  the card's memory bandwidth, and
- the host's work: every operation PyTorch dispatches costs about `HOST_SECONDS_PER_OP`
  of Python and launch time in eager mode, which is what bounds a fast card at batch 1.
The constants are fitted to the published H100 steps in BENCHMARKS.md (SD1.5 512 px
batch 1: 0.181 s; SDXL 1024 px batch 1 with gradient checkpointing: 1.08 s); real runs
differ by tens of percent (drivers, clocks, data loading, other programs on the GPU).

Pure Python (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass

UTILISATION = 0.45  # share of the tensor-core peak a U-Net step reaches
BANDWIDTH_SHARE = 0.7  # share of the memory bandwidth elementwise kernels reach
HOST_SECONDS_PER_OP = 14e-6  # eager PyTorch: Python + dispatch + launch per operation


@dataclass(frozen=True)
class Gpu:
    name: str
    vram_gib: float
    half_tflops: float  # fp16 / bf16 tensor cores, dense, fp32 accumulate
    fp32_tflops: float
    bandwidth_gbs: float  # memory bandwidth, GB/s
    aliases: tuple[str, ...] = ()


GPUS = (
    Gpu("RTX 3060 12GB", 12, 25.5, 12.7, 360, ("3060",)),
    Gpu("RTX 4070", 12, 58.3, 29.1, 504, ("4070",)),
    Gpu("RTX 4070 Ti", 12, 80.2, 40.1, 504, ("4070ti", "4070 ti")),
    Gpu("RTX 3090", 24, 71.0, 35.6, 936, ("3090",)),
    Gpu("RTX 4090", 24, 165.2, 82.6, 1008, ("4090",)),
    Gpu("A100 80GB", 80, 312.0, 19.5, 2039, ("a100",)),
    Gpu("H100 SXM", 80, 989.4, 66.9, 3350, ("h100",)),
    Gpu("H200", 141, 989.4, 66.9, 4800, ("h200",)),
)


def _plain(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def find_gpu(name: str | None = None, vram_gib: float | None = None) -> Gpu:
    """The GPU named (loosely: "4090", "GeForce RTX 3060"), else the slowest common card with at
    least `vram_gib` (the estimate is then on the safe side), else an RTX 3060 12GB."""
    if name:
        wanted = _plain(name)
        found = [
            (len(alias), gpu)
            for gpu in GPUS
            for alias in (_plain(gpu.name), *(_plain(a) for a in gpu.aliases))
            if alias in wanted
        ]
        if not found:
            raise ValueError(f"unknown GPU {name!r}; known: " + ", ".join(g.name for g in GPUS))
        return max(found, key=lambda pair: pair[0])[1]  # "4070 Ti" is the Ti, not the 4070
    if vram_gib:
        fitting = [g for g in GPUS if g.vram_gib >= vram_gib - 0.5]
        if fitting:
            return min(fitting, key=lambda g: (g.vram_gib, g.half_tflops))
        return max(GPUS, key=lambda g: g.vram_gib)
    return GPUS[0]


def seconds_per_step(flops: float, ops: int, bytes_written: int, gpu: Gpu, mixed_precision: str) -> float:
    """Estimated seconds of one training step (see the module docstring)."""
    peak = gpu.half_tflops if mixed_precision in ("fp16", "bf16") else gpu.fp32_tflops
    compute = flops / (peak * 1e12 * UTILISATION)
    traffic = 2 * bytes_written / (gpu.bandwidth_gbs * 1e9 * BANDWIDTH_SHARE)
    return max(compute + traffic, ops * HOST_SECONDS_PER_OP)
