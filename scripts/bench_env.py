"""Ours at its default settings against the same run under environment variables a user could set.

    python scripts/bench_env.py --model-file CKPT [--runs 2] [--steps 4] [--warmup 1] [--json OUT] \
        [--variant NAME=KEY=VALUE ...]

Whole runs of `python -m trainer` (the sd-scripts comparison's preset: full-size SD1.5 at
256 px, batch 1, fp32, 2 threads; scripts/bench_sdscripts.py) alternate between the default
environment and each variant (by default OMP_WAIT_POLICY=ACTIVE and OMP_WAIT_POLICY=PASSIVE),
under scripts/bench_shim.py; s/step is the median step after the warm-up, as there. The
default must be no slower than any variant (issue 16).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts")]

DEFAULT_VARIANTS = ["active=OMP_WAIT_POLICY=ACTIVE", "passive=OMP_WAIT_POLICY=PASSIVE"]
CLEARED = ("OMP_WAIT_POLICY", "TRAINER_SET_OMP_WAIT_POLICY", "OMP_NUM_THREADS", "KMP_BLOCKTIME")


def _variants(specs: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {"default": {}}
    for spec in specs:
        name, _, assignment = spec.partition("=")
        key, _, value = assignment.partition("=")
        if not (name and key):
            raise SystemExit(f"--variant {spec!r}: write NAME=KEY=VALUE, e.g. active=OMP_WAIT_POLICY=ACTIVE")
        out.setdefault(name, {})[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    from bench import load_average, write_dataset
    from bench_sdscripts import IMAGES, RESOLUTION, our_preset, run_once

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-file", required=True, help="the SD1.5 checkpoint (scripts/bench.py writes one)")
    p.add_argument("--runs", type=int, default=2, help="whole runs per variant, alternating")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variant", action="append", default=None, metavar="NAME=KEY=VALUE")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    variants = _variants(args.variant if args.variant is not None else DEFAULT_VARIANTS)
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    results: dict[str, list[dict]] = {name: [] for name in variants}
    load = [load_average()]
    with tempfile.TemporaryDirectory(prefix="bench-env-") as name:
        tmp = Path(name)
        data = write_dataset(tmp / "data", images=IMAGES, resolution=RESOLUTION)
        total = args.warmup + args.steps + 1
        preset = tmp / "ours.json"
        preset.write_text(
            json.dumps(our_preset(Path(args.model_file), data, tmp / "out", args.threads, total))
        )
        command = [sys.executable, "-m", "trainer", "--config", str(preset)]
        order = list(variants)
        for i in range(args.runs):
            for variant in order if i % 2 == 0 else order[::-1]:
                env = {**base, **variants[variant], "PYTHONPATH": str(ROOT)}
                log = tmp / f"{variant}-{i}.log"
                result = run_once(command, env, ROOT, tmp / f"{variant}-{i}.jsonl", log, args.warmup)
                results[variant].append(result)
                print(f"  run {i + 1} {variant}: {result['s_per_step']} s/step", file=sys.stderr)
    load.append(load_average())
    report = {
        name: {"s_per_step": statistics.median(r["s_per_step"] for r in runs), "runs": runs}
        for name, runs in results.items()
    }
    default = report["default"]["s_per_step"]
    for name, side in report.items():
        side["ratio_to_default"] = round(side["s_per_step"] / default, 3)
        print(f"{name:>10}: {side['s_per_step']:.3f} s/step  ({side['ratio_to_default']:.3f} x default)")
    report["settings"] = {"variants": variants, "runs": args.runs, "steps": args.steps, "warmup": args.warmup}
    report["machine"] = {"load_avg_1min": load, "cpus": os.cpu_count()}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
