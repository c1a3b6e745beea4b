"""The report of a benchmark (scripts/bench.py): each side's summary, the machine it ran
on, the share of the card's peak, and the lines printed at the end.

Kept apart from the measuring so that bench.py reads as what it does: start both sides,
alternate their steps, report.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path

SD15_TFLOP_PER_IMAGE_512 = 1.73  # forward + backward through the activations, SD1.5 U-Net at 512 px
BF16_PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.1, "4090": 165.2}


def summary(times: list[float], batch: int, ready: dict, memory: dict) -> dict:
    """One side's result: the median step, images per second, memory and what it trained."""
    median = statistics.median(times)
    return {
        "sec_per_step": round(median, 5),
        "images_per_sec": round(batch / median, 3),
        "peak_mem_gib": memory["peak_mem_gib"],
        "setup_peak_mem_gib": memory["setup_peak_mem_gib"],
        "peak_kind": memory["peak_kind"],
        "setup_s": ready["setup_s"],
        "step_times": [round(t, 5) for t in times],
        **{k: ready[k] for k in ("lora_layers", "trainable_params", "latent_cache", "text_cache")},
    }


def machine(device: str) -> dict:
    """What ran it: CPU model and cores, or the GPU."""
    info = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    info["cores"] = os.cpu_count()
    if device == "cuda":
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def load_average() -> float | None:
    """The 1-minute load average: how busy the machine was (others' work shows up here)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def add_flops(result: dict, args: argparse.Namespace, resolution: int, gpu: str) -> None:
    """For SD1.5 at 512 px: TFLOP/s achieved and the share of the card's bf16 peak."""
    if args.arch != "sd15" or resolution != 512:
        return
    achieved = result["images_per_sec"] * SD15_TFLOP_PER_IMAGE_512
    result["tflops"] = round(achieved, 1)
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in gpu), None)
    if peak:
        result["share_of_bf16_peak"] = round(achieved / peak, 4)


def print_report(report: dict) -> None:
    """The few lines a person reads at the end (the JSON file holds everything)."""
    s = report["settings"]
    print(
        f"{s['arch']} on {s['device']}, batch {s['batch']}, {s['resolution']} px, rank {s['rank']}, "
        f"precision {s['precision']}, {s['steps']} steps after {s['warmup']} warm-up"
    )
    for side in ("ours", "reference"):
        r = report[side]
        print(
            f"  {side:9} {r['sec_per_step']:.4f} s/step  {r['images_per_sec']:.2f} img/s  "
            f"peak {r['peak_mem_gib']:.3f} GiB  setup {r['setup_s']} s"
        )
    print(
        f"  ratio ours / reference: {report['ratio']} (time), {report['memory_ratio']} (memory); "
        f"load average {report['machine']['load_avg_1min']}"
    )
    if "demo_time_to_first_step_s" in report:
        print(
            f"  demo time to first step: {report['demo_time_to_first_step_s']} s "
            f"(the one-step run used {report['demo_one_step_run_cpu_s']} CPU s)"
        )


def print_sd_scripts_report(report: dict) -> None:
    """The lines a person reads after `--reference sd-scripts`."""
    s = report["settings"]
    print(
        f"{s.get('arch', 'sd15')} (random weights) on {s.get('device', 'cpu')}, {s['images']} images at "
        f"{s['resolution']} px, batch {s.get('batch', 1)}, rank {s['rank']} / alpha {s['alpha']}, "
        f"{'U-Net + TE' if s.get('train_text_encoder', True) else 'U-Net only'}, {s['precision']}, "
        f"{'gradient checkpointing, ' if s.get('gradient_checkpointing') else ''}{s['threads']} threads; "
        f"{s['runs']} runs per side, {s['steps']} steps after {s['warmup']} warm-up"
    )
    for side, name in (("ours", "ours"), ("reference", "sd-scripts")):
        r = report[side]
        vram = f"  peak GPU {r['peak_vram_gib']:.2f} GiB" if r.get("peak_vram_gib") is not None else ""
        print(
            f"  {name:10} {r['s_per_step']:.3f} s/step  peak RSS {r['peak_rss_gib']:.2f} GiB{vram}  "
            f"first step {r['first_step_s']:.1f} s"
        )
    vram_ratio = f", {report['vram_ratio']} (peak GPU memory)" if report.get("vram_ratio") is not None else ""
    print(
        f"  ratio ours / sd-scripts: {report['ratio']} (s/step), {report['memory_ratio']} (peak RSS)"
        f"{vram_ratio}, "
        f"{report['first_step_ratio']} (first step); load average {report['machine']['load_avg_1min']}"
    )
