"""sd-scripts (kohya-ss) as the benchmark's reference: its train_network.py beside `python -m trainer`.

    python scripts/bench.py --reference sd-scripts --sd-scripts DIR --sd-scripts-python PY \
        [--runs 2] [--steps 8] [--warmup 2] [--threads 2] [--json OUT]

Both programs train, as their users start them, the same full-size SD1.5 checkpoint with
random weights (one fp16 .safetensors in the original layout, as downloaded; written
once from scripts/bench_models.py's `sd15`, seed 0), on the same 12 images at 256 px with
the same captions, at the same settings: batch 1, LoRA rank 4 / alpha 1 on the U-Net and
the text encoder, AdamW, fp32 (`mixed_precision` no), latents cached, SDPA, no data-loader
workers, `--threads` CPU threads per process (ours: `num_cpu_threads_per_process`;
sd-scripts: OMP_NUM_THREADS, as the Kohya GUI's `accelerate launch
--num_cpu_threads_per_process` sets it). Whole runs alternate (ours, sd-scripts, ours, ...)
and never overlap. Each runs under scripts/bench_shim.py, which timestamps every
optimizer step: s/step is the median step after the warm-up steps (model loading and
latent caching excluded), time to first step is from process start, and peak RSS is the
process's own (VmHWM), over the whole run and over the steps alone.

The sd-scripts environment: RECIPE below (also in `bench.py --help` and BENCHMARKS.md).

No network is needed: the tokenizer is given through sd-scripts' --tokenizer_cache_dir as
a folder built from the CLIP BPE vocabulary in the open-clip-torch wheel
(trainer/models/tokenizer.py).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3
IMAGES, RESOLUTION, RANK, ALPHA = 12, 256, 4, 1
TOKENIZER_FOLDER = "openai_clip-vit-large-patch14"  # sd-scripts' cache name for TOKENIZER_ID
RECIPE = """The sd-scripts environment (the recipe used for BENCHMARKS.md, sd-scripts main 48d368f):

    python -m venv SD_VENV
    SD_VENV/bin/pip install torch==2.13.0              # the CPU wheel; never a bare `torch`
    grep -v -E '^(bitsandbytes|-e \\.)' DIR/requirements.txt > req.txt  # bitsandbytes: CUDA only
    SD_VENV/bin/pip install -r req.txt                 # its pins (transformers 4.54.1,
                                                       # diffusers 0.32.1, accelerate 1.6.0) work
    SD_VENV/bin/pip install --no-deps -e DIR           # its `library` package
    SD_VENV/bin/pip install --no-deps torchvision==0.28.0   # the release paired with torch 2.13
    # torchvision's PyPI wheel is a CUDA build whose ops library cannot load beside the CPU
    # torch, and its fake-kernel registrations then fail at import; sd-scripts only uses
    # torchvision.transforms, so empty that one file:
    echo '' > SD_VENV/lib/python3.11/site-packages/torchvision/_meta_registrations.py
"""


def write_model(path: Path, seed: int = 0, precision: str = "fp16") -> None:
    """The random full-size SD1.5 checkpoint both sides load (run in a process of its own:
    building it takes ~4 GiB that the benchmark's own process should not keep)."""
    sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
    import torch
    from bench_models import build_models
    from safetensors.torch import save_file

    from trainer.models.single_file import to_original_layout

    m = build_models("sd15", seed=seed)
    components = {"unet": m.unet, "vae": m.vae, "text_encoder": m.text_encoders[0]}
    state = to_original_layout(components, "sd1")
    if precision == "fp16":
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
    tmp.replace(path)
    del torch


def write_tokenizer(cache_dir: Path) -> Path:
    """openai/clip-vit-large-patch14's tokenizer as a folder sd-scripts' transformers loads."""
    sys.path.insert(0, str(ROOT))
    from trainer.models.tokenizer import MODEL_MAX_LENGTH, write_bpe_files

    folder = cache_dir / TOKENIZER_FOLDER
    write_bpe_files(folder)
    config = {"model_max_length": MODEL_MAX_LENGTH, "pad_token": "<|endoftext|>"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return cache_dir


def our_preset(model: Path, data: Path, out: Path, threads: int, steps: int) -> dict:
    demo = json.loads((ROOT / "presets" / "demo.json").read_text(encoding="utf-8"))
    preset = {k: v for k, v in demo.items() if k != "training_comment"}
    preset.update(
        {
            "pretrained_model_name_or_path": str(model),
            "train_data_dir": str(data),
            "output_dir": str(out),
            "output_name": "bench_ours",
            "logging_dir": "",
            "train_batch_size": 1,
            "max_resolution": f"{RESOLUTION},{RESOLUTION}",
            "enable_bucket": False,
            "network_dim": RANK,
            "network_alpha": ALPHA,
            "mixed_precision": "no",
            "cache_latents": True,
            "xformers": "sdpa",
            "max_data_loader_n_workers": 0,
            "num_cpu_threads_per_process": threads,
            "max_train_steps": steps,
            "epoch": 100,
            "save_every_n_epochs": 100,
        }
    )
    return preset


def sd_scripts_args(model: Path, data: Path, out: Path, tokenizers: Path, steps: int) -> list[str]:
    """train_network.py's arguments for the same run (demo preset's learning rates, seed)."""
    demo = json.loads((ROOT / "presets" / "demo.json").read_text(encoding="utf-8"))
    return [
        *("--pretrained_model_name_or_path", str(model), "--train_data_dir", str(data)),
        *("--output_dir", str(out), "--output_name", "bench_sd_scripts", "--save_model_as", "safetensors"),
        *("--resolution", f"{RESOLUTION},{RESOLUTION}", "--train_batch_size", "1"),
        *("--caption_extension", ".txt", "--max_train_steps", str(steps), "--seed", str(demo["seed"])),
        *("--network_module", "networks.lora", "--network_dim", str(RANK), "--network_alpha", str(ALPHA)),
        *("--optimizer_type", "AdamW", "--learning_rate", str(demo["learning_rate"])),
        *("--unet_lr", str(demo["unet_lr"]), "--text_encoder_lr", str(demo["text_encoder_lr"])),
        *("--lr_scheduler", "constant", "--mixed_precision", "no", "--save_precision", "fp16"),
        *("--cache_latents", "--sdpa", "--max_data_loader_n_workers", "0"),
        *("--tokenizer_cache_dir", str(tokenizers)),
    ]


def run_once(command: list[str], env: dict, cwd: Path, steps_file: Path, log: Path, warmup: int) -> dict:
    """One whole run under the shim; its steady s/step, time to first step and peak RSS."""
    steps_file.unlink(missing_ok=True)
    shim = [str(ROOT / "scripts" / "bench_shim.py"), str(steps_file)]
    start = time.time()
    with log.open("w", encoding="utf-8") as out:
        code = subprocess.run(
            [command[0], *shim, *command[1:]], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode
    records = (
        [json.loads(line) for line in steps_file.read_text().splitlines()] if steps_file.exists() else []
    )
    steps = [r for r in records if "t" in r]
    if code != 0 or len(steps) < warmup + 2:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{command[0]} exited {code} after {len(steps)} steps:\n{tail}")
    gaps = [b["t"] - a["t"] for a, b in zip(steps, steps[1:], strict=False)][warmup:]
    hwm = [r["hwm_kib"] for r in records if r.get("hwm_kib")]
    after_first = [r["hwm_kib"] for r in records[1:] if r.get("hwm_kib")]
    return {
        "s_per_step": round(statistics.median(gaps), 4),
        "step_times": [round(g, 4) for g in gaps],
        "first_step_s": round(steps[0]["t"] - start, 2),
        "peak_rss_gib": round(max(hwm) * 1024 / GIB, 3),
        "steps_peak_rss_gib": round(max(after_first) * 1024 / GIB, 3) if steps[0].get("reset") else None,
        "wall_s": round(time.time() - start, 1),
    }


def _median_side(runs: list[dict]) -> dict:
    keys = ("s_per_step", "first_step_s", "peak_rss_gib", "steps_peak_rss_gib", "wall_s")
    side = {k: statistics.median(r[k] for r in runs) for k in keys if all(r.get(k) is not None for r in runs)}
    side["runs"] = runs
    return side


def compare(args, tmp: Path, write_dataset) -> dict:
    """Alternate whole runs of ours and sd-scripts; the median of each side and the ratios."""
    sd_dir = Path(args.sd_scripts).resolve()
    sd_python = args.sd_scripts_python or str(sd_dir / "venv" / "bin" / "python")
    if not (sd_dir / "train_network.py").is_file():
        raise SystemExit(f"--sd-scripts {sd_dir}: no train_network.py there")
    precision = getattr(args, "model_precision", "fp16")
    model = Path(args.model_file) if args.model_file else tmp / f"sd15-random-{precision}.safetensors"
    if not model.exists():
        print(f"writing the random SD1.5 checkpoint ({precision}) to {model} ...", file=sys.stderr)
        subprocess.run([sys.executable, __file__, "write-model", str(model), precision], check=True, cwd=ROOT)
    data = write_dataset(tmp / "data", images=IMAGES, resolution=RESOLUTION)
    tokenizers = write_tokenizer(tmp / "tokenizers")
    threads = args.threads or 2
    total = args.warmup + args.steps + 1
    preset_path = tmp / "ours.json"
    preset_path.write_text(
        json.dumps(our_preset(model, data, tmp / "out_ours", threads, total)), encoding="utf-8"
    )
    base = {
        k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "TRAINER_SET_OMP_WAIT_POLICY")
    }
    sides = {
        "ours": (
            [sys.executable, "-m", "trainer", "--config", str(preset_path)],
            {**base, "PYTHONPATH": str(ROOT)},
            ROOT,
        ),
        "reference": (
            [
                sd_python,
                str(sd_dir / "train_network.py"),
                *sd_scripts_args(model, data, tmp / "out_sd", tokenizers, total),
            ],
            {**base, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(sd_dir)},
            sd_dir,
        ),
    }
    runs: dict[str, list[dict]] = {"ours": [], "reference": []}
    for i in range(args.runs):
        for side in ("ours", "reference") if i % 2 == 0 else ("reference", "ours"):
            command, env, cwd = sides[side]
            log = tmp / f"{side}-{i}.log"
            result = run_once(command, env, cwd, tmp / f"{side}-{i}.jsonl", log, args.warmup)
            runs[side].append(result)
            print(
                f"  run {i + 1} {side}: {result['s_per_step']} s/step, peak {result['peak_rss_gib']} GiB, "
                f"first step {result['first_step_s']} s",
                file=sys.stderr,
            )
    ours, ref = _median_side(runs["ours"]), _median_side(runs["reference"])
    pairs = list(zip(runs["ours"], runs["reference"], strict=True))
    return {
        "ours": ours,
        "reference": {**ref, "name": "sd-scripts train_network.py", "dir": str(sd_dir), "python": sd_python},
        "ratio": round(statistics.median(o["s_per_step"] / r["s_per_step"] for o, r in pairs), 3),
        "memory_ratio": round(statistics.median(o["peak_rss_gib"] / r["peak_rss_gib"] for o, r in pairs), 3),
        "first_step_ratio": round(
            statistics.median(o["first_step_s"] / r["first_step_s"] for o, r in pairs), 3
        ),
        "settings": {
            "arch": "sd15",
            "device": "cpu",
            "images": IMAGES,
            "resolution": RESOLUTION,
            "batch": 1,
            "rank": RANK,
            "alpha": ALPHA,
            "precision": "fp32",
            "train_text_encoder": True,
            "threads": threads,
            "steps": args.steps,
            "warmup": args.warmup,
            "runs": args.runs,
            "model": str(model),
            "model_precision": precision if not args.model_file else "as in --model-file",
        },
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["write-model"]:
        write_model(Path(sys.argv[2]), precision=(sys.argv[3:4] or ["fp16"])[0])
