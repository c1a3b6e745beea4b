"""The memory estimate at the published reference points, and what the estimate itself costs.

    python scripts/bench_estimate.py                 # every case, each in a fresh process
    python scripts/bench_estimate.py --case sdxl-1024 --json OUT

Each case estimates a full-size model from the configs shipped in trainer/models/configs
(no weights exist or are read) and reports the estimate next to the published
measurement, with the wall and CPU seconds and the peak resident memory of the process
that made it (a fresh process, so imports count, and no cache).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "trainer" / "models" / "configs"
# name -> (model, settings, published GiB, where it was published)
COMMON = {"network_dim": 16, "network_alpha": 16, "mixed_precision": "bf16", "optimizer": "AdamW"}
CASES = {
    "sd15-512": ("sd15", {"max_resolution": "512,512"}, 2.87, "SimpleTuner docs, H100"),
    "sd15-512-gc": ("sd15", {"max_resolution": "512,512", "gradient_checkpointing": True}, None, ""),
    "sdxl-1024": ("sdxl", {"max_resolution": "1024,1024"}, 13.0, "published SDXL LoRA 1024 px"),
    "sdxl-1024-gc": ("sdxl", {"max_resolution": "1024,1024", "gradient_checkpointing": True}, 6.53, "same"),
    "sd2v-768": ("sd2v", {"max_resolution": "768,768", "v2": True, "v_parameterization": True}, None, ""),
    # the seed guide: an RTX 4070 Ti (12 GB), SD1.x, rank 512, 1024 px, AdamW8bit: batch 1 only
    "guide-b1": (
        "sd15",
        {"max_resolution": "1024,1024", "network_dim": 512, "network_alpha": 50, "optimizer": "AdamW8bit",
         "network_train_unet_only": False},
        None,
        "guide: fits 12 GB",
    ),
    "guide-b2": (
        "sd15",
        {"max_resolution": "1024,1024", "network_dim": 512, "network_alpha": 50, "optimizer": "AdamW8bit",
         "network_train_unet_only": False, "train_batch_size": 2},
        None,
        "guide: out of memory on 12 GB",
    ),
}  # fmt: skip


def settings(case: str, data_dir: str) -> dict:
    model, extra, _, _ = CASES[case]
    return {
        "pretrained_model_name_or_path": str(CONFIGS / model),
        "train_data_dir": data_dir,
        "output_dir": str(Path(data_dir) / "out"),
        "output_name": case,
        "cache_latents": True,
        "network_train_unet_only": True,
        **({"sdxl": True} if model == "sdxl" else {}),
        **COMMON,
        **extra,
    }


def run_case(case: str, vram: float | None) -> dict:
    """Estimate one case in this process (no cache) and time it."""
    started, cpu = time.perf_counter(), time.process_time()
    from trainer.config import config_from_dict
    from trainer.estimate import estimate

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LORA_GUI_ESTIMATES"] = str(Path(tmp) / "cache")  # a fresh cache, not the user's
        cfg, _ = config_from_dict(settings(case, tmp))
        est = estimate(cfg, vram, use_cache=False, advice=False)
    _, _, published, where = CASES[case]
    return {
        "case": case,
        "allocated_peak_gib": est.allocated_peak_gib,
        "peak_vram_gib": est.peak_vram_gib,
        "step_peak_gib": est.step_peak_gib,
        "setup_peak_gib": est.setup_peak_gib,
        "breakdown_gib": est.breakdown_gib,
        "verdict": est.verdict,
        "published_gib": published,
        "published_where": where,
        "tflop_per_step": est.tflop_per_step,
        "seconds_per_step": _seconds(cfg, est),
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
        "max_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "load_average": os.getloadavg()[0],
    }


def _seconds(cfg, est) -> dict:
    from trainer.estimate.estimate import measured_step
    from trainer.estimate.gpus import find_gpu, seconds_per_step

    step, _ = measured_step(cfg, tuple(est.bucket))  # kept by the estimate just made
    return {
        gpu: round(
            seconds_per_step(step["flops"], step["ops"], step["bytes_written"], find_gpu(gpu), "bf16"), 3
        )
        for gpu in ("h100", "4090", "3060")
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--case", choices=sorted(CASES), help="one case in this process (default: all, each apart)"
    )
    p.add_argument("--vram", type=float, default=None)
    p.add_argument("--json", help="write the result(s) here")
    args = p.parse_args(argv)
    if args.case:
        results = [run_case(args.case, args.vram)]
    else:
        results = []
        for case in CASES:
            vram = 12.0 if case.startswith("guide") else args.vram
            cmd = [sys.executable, __file__, "--case", case] + (["--vram", str(vram)] if vram else [])
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                subprocess.run(
                    [*cmd, "--json", out.name], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
                )
                results.extend(json.loads(Path(out.name).read_text()))
    for r in results:
        print(json.dumps(r))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
