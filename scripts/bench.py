"""Benchmark our training step against the diffusers + peft recipe a user would otherwise take.

    python scripts/bench.py --arch {tiny,tiny-sdxl,sd15,sdxl} --device {cpu,cuda} \
        --batch N --resolution R [--steps N] [--warmup N] [--json OUT] [--first-step]

Both sides train the same random-weight model (scripts/bench_models.py) with the same
batch, resolution, LoRA rank / alpha, targets, precision and optimizer; each runs in a
process of its own (scripts/bench_worker.py) so that its peak memory is its own. After the
warm-up steps the two take turns, one step at a time, the order swapped every round, so a
noisy, shared machine slows both alike; the seconds per step are the medians.

`--reference sd-scripts --sd-scripts DIR --sd-scripts-python PY` compares with
kohya-ss/sd-scripts' train_network.py instead: whole runs of both programs alternate on
the same random SD1.5 checkpoint, images and settings (scripts/bench_sdscripts.py: the
settings, and the recipe of sd-scripts' own venv); the JSON's `ours` / `reference` hold
`s_per_step`, `first_step_s` and `peak_rss_gib`.

`tiny` defaults to the demo preset's settings (presets/demo.json: batch 2, 128 px, rank 8,
fp32, text encoder trained, latents cached); `sd15` / `sdxl` default to rank 16, the U-Net
only, bf16 on a GPU, and gradient checkpointing for SDXL. `--first-step` also times the
demo from `python -m trainer` to its first step. `--json` writes
{"ours": {...}, "reference": {...}, "ratio": ours / reference seconds per step, ...}
(the report's parts: scripts/bench_report.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "scripts") not in sys.path:  # scripts/ is not a package; its modules import by name
    sys.path.insert(0, str(ROOT / "scripts"))
from bench_report import add_flops, load_average, machine, print_report, print_sd_scripts_report, summary  # noqa: E402

MARK = "TRAINER_SET_OMP_WAIT_POLICY"  # trainer/run/cpu_threads.py's mark of its own value

ARCHS = ("tiny", "tiny-sdxl", "sd15", "sdxl")


def _args(argv: list[str] | None) -> argparse.Namespace:
    from bench_sdscripts import RECIPE

    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="--reference sd-scripts: " + RECIPE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--arch", choices=ARCHS, default="tiny")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--batch", type=int, help="images per step (tiny: the demo's 2, else 1)")
    p.add_argument("--resolution", type=int, help="square side in px (tiny 128, sd15 512, sdxl 1024)")
    p.add_argument("--steps", type=int, default=10, help="measured steps per side")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured steps per side first")
    p.add_argument("--rank", type=int, help="LoRA rank (tiny: the demo's 8, else 16)")
    p.add_argument(
        "--precision",
        choices=["no", "fp16", "bf16"],
        help="mixed precision (default: bf16 on cuda, the demo's 'no' on cpu)",
    )
    p.add_argument(
        "--train-text-encoder",
        action=argparse.BooleanOptionalAction,
        help="also train text-encoder LoRA (tiny: yes as in the demo, else no)",
    )
    p.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        help="default: on for sdxl, off otherwise",
    )
    p.add_argument("--threads", type=int, help="CPU threads per side (default: the demo's 2)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="any other setting of ours, e.g. --set torch_compile=true (the reference "
        "reads only the shared ones: rank, precision, batch, ...)",
    )
    p.add_argument(
        "--same-env",
        action="store_true",
        help="give the reference our CPU-thread defaults too (trainer/run/cpu_threads.py), "
        "to compare the training steps alone",
    )
    p.add_argument(
        "--reference",
        choices=["diffusers-peft", "sd-scripts"],
        default="diffusers-peft",
        help="what to compare with: the diffusers + peft recipe (steps alternate in two "
        "processes), or kohya-ss/sd-scripts' train_network.py (whole runs alternate; full-size "
        "sd15/sdxl, by default on CPU at 256 px: scripts/bench_sdscripts.py, which has its venv recipe)",
    )
    p.add_argument("--sd-scripts", metavar="DIR", help="an sd-scripts checkout (--reference sd-scripts)")
    p.add_argument(
        "--sd-scripts-python",
        metavar="PY",
        help="the Python of sd-scripts' own venv (default DIR/venv/bin/python)",
    )
    p.add_argument("--runs", type=int, default=2, help="sd-scripts: whole runs per side, alternating")
    p.add_argument(
        "--model-file",
        metavar="PATH",
        help="sd-scripts: the random sd15/sdxl checkpoint to reuse (written there if missing)",
    )
    p.add_argument(
        "--model-precision",
        choices=("fp16", "fp32"),
        default="fp16",
        help="sd-scripts: the checkpoint's stored precision when it is written (fp16 as most "
        "downloads; fp32 as the official SD1.5 v1-5-pruned-emaonly file)",
    )
    p.add_argument("--first-step", action="store_true", help="also time the demo to its first step")
    p.add_argument("--json", type=Path, help="write the results here")
    return p.parse_args(argv)


def settings_for(args: argparse.Namespace, data_dir: Path, out_dir: Path) -> tuple[dict, int]:
    """(our preset for both sides, resolution) from the arguments and the arch's defaults."""
    tiny = args.arch.startswith("tiny")
    demo = json.loads((ROOT / "presets" / "demo.json").read_text(encoding="utf-8"))
    resolution = args.resolution or (128 if tiny else 1024 if args.arch == "sdxl" else 512)
    rank = args.rank or (demo["network_dim"] if tiny else 16)
    preset = {k: v for k, v in demo.items() if k not in ("training_comment", "pretrained_model_name_or_path")}
    preset.update(
        {
            "pretrained_model_name_or_path": f"random-{args.arch}",  # in memory; never loaded from disk
            "train_data_dir": str(data_dir),
            "output_dir": str(out_dir),
            "logging_dir": "",
            "train_batch_size": args.batch or (demo["train_batch_size"] if tiny else 1),
            "max_resolution": f"{resolution},{resolution}",
            "enable_bucket": False,
            "network_dim": rank,
            "network_alpha": demo["network_alpha"] if tiny and not args.rank else rank,
            "mixed_precision": args.precision
            or ("bf16" if args.device == "cuda" else demo["mixed_precision"]),
            "network_train_unet_only": not (
                tiny if args.train_text_encoder is None else args.train_text_encoder
            ),
            "gradient_checkpointing": (
                args.arch == "sdxl" if args.gradient_checkpointing is None else args.gradient_checkpointing
            ),
            "num_cpu_threads_per_process": args.threads or demo["num_cpu_threads_per_process"],
            "sdxl": args.arch in ("sdxl", "tiny-sdxl"),
        }
    )
    for item in args.set:
        key, _, value = item.partition("=")
        preset[key] = json.loads(value)
    return preset, resolution


def write_dataset(root: Path, images: int, resolution: int) -> Path:
    """A one-folder Kohya dataset of square images with different captions."""
    from PIL import Image, ImageDraw

    folder = root / "1_bench"
    folder.mkdir(parents=True)
    for i in range(images):
        img = Image.new("RGB", (resolution, resolution), (255 - 20 * i % 255, 240, 230))
        side = resolution // 2
        ImageDraw.Draw(img).rectangle([i * 3 % side, 10, i * 3 % side + side, 10 + side], fill=(200, 30, 30))
        img.save(folder / f"img{i:03d}.png")
        (folder / f"img{i:03d}.txt").write_text(f"bench, red square, picture {i}", encoding="utf-8")
    return root


def side_env() -> dict[str, str]:
    """A side's environment: this one without OMP_WAIT_POLICY, so that ours chooses its own
    (trainer/run/cpu_threads.py) and the reference runs with libgomp's stock one."""
    return {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", MARK)}


class Worker:
    """One side's process; `ask` sends a command and returns its answer."""

    def __init__(self, side: str, args: argparse.Namespace, preset: dict, resolution: int, log: Path):
        self.side, self.log_path = side, log
        self.log = log.open("w", encoding="utf-8")
        command = [
            sys.executable,
            str(ROOT / "scripts" / "bench_worker.py"),
            "--side",
            side,
            "--arch",
            args.arch,
            "--device",
            args.device,
            "--resolution",
            str(resolution),
            "--preset",
            json.dumps(preset),
        ]
        if side == "reference" and args.same_env:
            command.append("--same-env")
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=ROOT,
            env=side_env(),
        )
        self.ready = self._read()

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("@@bench "):
                return json.loads(line[len("@@bench ") :])
            self.log.write(line)
        self.log.flush()
        tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"the {self.side} worker stopped (exit {self.proc.wait()}):\n{tail}")

    def ask(self, command: str) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def measure(args: argparse.Namespace, preset: dict, resolution: int, tmp: Path) -> dict:
    """Warm both sides up, then alternate single steps; the medians and memory of each."""
    sides: dict[str, Worker] = {}
    try:
        for side in ("ours", "reference"):  # one after the other: setups do not overlap
            sides[side] = Worker(side, args, preset, resolution, tmp / f"{side}.log")
        for worker in sides.values():
            if args.warmup:
                worker.ask(f"step {args.warmup}")
        times: dict[str, list[float]] = {"ours": [], "reference": []}
        for i in range(args.steps):
            order = ("ours", "reference") if i % 2 == 0 else ("reference", "ours")
            for side in order:
                times[side] += sides[side].ask("step 1")["times"]
        results = {}
        for side, worker in sides.items():
            memory = worker.ask("done")
            results[side] = summary(times[side], preset["train_batch_size"], worker.ready, memory)
        return results
    finally:
        for worker in sides.values():
            worker.close()


def time_to_first_step(tmp: Path) -> tuple[float, float]:
    """(wall seconds from starting `python -m trainer` on the demo preset to its first step
    event, CPU seconds of that whole one-step run): the CPU time does not grow when other
    work shares the machine, so it tells a slow start from a busy machine."""
    model, data = tmp / "demo_model", tmp / "demo_dataset"
    makers = (
        ("make_tiny_model.py", ["--arch", "sd15", "--format", "diffusers", "--out", str(model)]),
        ("make_demo_dataset.py", ["--out", str(data)]),
    )
    for script, extra in makers:
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / script), *extra],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
    preset = json.loads((ROOT / "presets" / "demo.json").read_text(encoding="utf-8"))
    preset.update(
        {
            "pretrained_model_name_or_path": str(model),
            "train_data_dir": str(data),
            "output_dir": str(tmp / "demo_out"),
            "logging_dir": "",
            "max_train_steps": 1,
        }
    )
    path = tmp / "demo_first_step.json"
    path.write_text(json.dumps(preset), encoding="utf-8")
    import resource  # Unix only, like the rest of this timing

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", "--config", str(path), "--events", "jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    first = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if first is None and line.startswith("{") and json.loads(line).get("kind") == "step":
            first = time.time() - start
    if proc.wait() != 0 or first is None:
        raise RuntimeError("the demo run failed; run it by hand: python -m trainer --config " + str(path))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return round(first, 2), round(cpu, 2)


def run(args: argparse.Namespace) -> dict:
    """The whole benchmark; returns the JSON-able report."""
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-") as name:
        tmp = Path(name)
        data = write_dataset(
            tmp / "data",
            images=max(4, args.batch or 1),
            resolution=args.resolution
            or (128 if args.arch.startswith("tiny") else 1024 if args.arch == "sdxl" else 512),
        )
        preset, resolution = settings_for(args, data, tmp / "out")
        results = measure(args, preset, resolution, tmp)
        report = {
            **results,
            "ratio": round(results["ours"]["sec_per_step"] / results["reference"]["sec_per_step"], 3),
            "memory_ratio": round(
                results["ours"]["peak_mem_gib"] / max(results["reference"]["peak_mem_gib"], 1e-9), 3
            ),
        }
        report["machine"] = {**machine(args.device), "load_avg_1min": [load_before, load_average()]}
        for side in ("ours", "reference"):
            add_flops(report[side], args, resolution, report["machine"].get("gpu", ""))
        if args.first_step:
            wall, cpu = time_to_first_step(tmp)
            report["demo_time_to_first_step_s"], report["demo_one_step_run_cpu_s"] = wall, cpu
    report["settings"] = {
        "arch": args.arch,
        "device": args.device,
        "resolution": resolution,
        "batch": preset["train_batch_size"],
        "rank": preset["network_dim"],
        "alpha": preset["network_alpha"],
        "precision": preset["mixed_precision"],
        "train_text_encoder": not preset["network_train_unet_only"],
        "gradient_checkpointing": preset["gradient_checkpointing"],
        "threads": preset["num_cpu_threads_per_process"],
        "steps": args.steps,
        "warmup": args.warmup,
        "extra": args.set,
        "same_env": args.same_env,
    }
    report["command"] = "python scripts/bench.py " + " ".join(sys.argv[1:])
    report["date"] = datetime.datetime.now().isoformat(timespec="seconds")
    return report


def run_sd_scripts(args: argparse.Namespace) -> dict:
    """ours vs sd-scripts' train_network.py, whole runs alternating (scripts/bench_sdscripts.py)."""
    from bench_sdscripts import compare

    if not args.sd_scripts:
        raise SystemExit("--reference sd-scripts needs --sd-scripts DIR (and --sd-scripts-python PY)")
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-sd-") as name:
        report = compare(args, Path(name), write_dataset)
    report["machine"] = {**machine(args.device), "load_avg_1min": [load_before, load_average()]}
    report["command"] = "python scripts/bench.py " + " ".join(sys.argv[1:])
    report["date"] = datetime.datetime.now().isoformat(timespec="seconds")
    return report


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.steps < 1 or args.warmup < 0 or args.runs < 1:
        raise SystemExit("--steps and --runs must be >= 1 and --warmup >= 0")
    if args.reference == "sd-scripts":
        report = run_sd_scripts(args)
        print_sd_scripts_report(report)
    else:
        report = run(args)
        print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
