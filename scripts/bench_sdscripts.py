"""sd-scripts (kohya-ss) as the benchmark's reference: its train_network.py beside `python -m trainer`.

    python scripts/bench.py --reference sd-scripts --sd-scripts DIR --sd-scripts-python PY \
        [--device cpu|cuda] [--arch sd15|sdxl] [--resolution PX] [--batch N] [--rank R] \
        [--precision no|fp16|bf16] [--[no-]gradient-checkpointing] [--[no-]train-text-encoder] \
        [--runs 2] [--steps 8] [--warmup 2] [--threads 2] [--json OUT]

Both programs train, as their users start them, the same full-size checkpoint with
random weights (one fp16 .safetensors in the original layout, as downloaded; written
once from scripts/bench_models.py's `sd15` or `sdxl`, seed 0; SDXL through sd-scripts'
sdxl_train_network.py and our preset's `sdxl`), on the same images (12, or the next
multiple of the batch) with the same captions, at the same settings (`settings()`). The
defaults are the CPU comparison: SD1.5 at 256 px, batch 1, LoRA rank 4 / alpha 1 on the
U-Net and the text encoder, AdamW, fp32 (`mixed_precision` no), latents cached, SDPA, no
data-loader workers; on cuda: 512 px (SDXL 1024 px), bf16 mixed precision, gradient
checkpointing for SDXL (bench.py's defaults), the rest the same. Both sides always get
the same batch, resolution, rank, precision, checkpointing and U-Net-only choice, and
`--threads` CPU threads per process (ours: `num_cpu_threads_per_process`; sd-scripts:
OMP_NUM_THREADS, as the Kohya GUI's `accelerate launch
--num_cpu_threads_per_process` sets it). Whole runs alternate (ours, sd-scripts, ours, ...)
and never overlap. Each runs under scripts/bench_shim.py, which timestamps every
optimizer step: s/step is the median step after the warm-up steps (model loading and
latent caching excluded), time to first step is from process start, and peak RSS is the
process's own (VmHWM), over the whole run and over the steps alone; on cuda also peak
GPU memory (torch.cuda.max_memory_allocated), likewise.

The sd-scripts environment: RECIPE below (also in `bench.py --help` and BENCHMARKS.md).

On the GPU machine scripts/gpu_check.sh runs it with the image's own Python for both sides
(sd-scripts from a carried .refs/sd-scripts, the packages it lacks from .whl/).

No network is needed: the tokenizers are given through sd-scripts' --tokenizer_cache_dir as
folders built from the CLIP BPE vocabulary in the open-clip-torch wheel
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
IMAGES, RESOLUTION, RANK, ALPHA = 12, 256, 4, 1  # the CPU comparison's defaults
# sd-scripts' tokenizer cache names (library/sdxl_train_util.py: TOKENIZER1_PATH, TOKENIZER2_PATH)
TOKENIZER_FOLDER = "openai_clip-vit-large-patch14"
TOKENIZER2_FOLDER = "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"
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


def settings(args=None) -> dict:
    """The run both sides get, from bench.py's arguments (None: the CPU comparison's defaults)."""

    def get(name: str):
        return getattr(args, name, None)

    arch = {"tiny": "sd15", None: "sd15"}.get(get("arch"), get("arch"))  # "tiny": bench.py's default
    if arch not in ("sd15", "sdxl"):
        raise SystemExit(f"--reference sd-scripts compares sd15 or sdxl, not {arch}")
    device = get("device") or "cpu"
    batch = get("batch") or 1
    checkpointing, text_encoder = get("gradient_checkpointing"), get("train_text_encoder")
    return {
        "arch": arch,
        "device": device,
        "resolution": get("resolution")
        or (1024 if arch == "sdxl" else 512 if device == "cuda" else RESOLUTION),
        "batch": batch,
        "images": -(-IMAGES // batch) * batch,  # whole batches only: no short last one
        "rank": get("rank") or RANK,
        "alpha": ALPHA,
        "precision": get("precision") or ("bf16" if device == "cuda" else "no"),
        "gradient_checkpointing": arch == "sdxl" if checkpointing is None else checkpointing,
        "train_text_encoder": True if text_encoder is None else text_encoder,
    }


def write_model(
    path: Path, seed: int = 0, precision: str = "fp16", arch: str = "sd15", device: str = "cpu"
) -> None:
    """The random full-size checkpoint both sides load (run in a process of its own:
    building it takes ~4 GiB (SDXL ~10 GiB) that the benchmark's own process should not keep;
    on cuda the weights are initialised on the GPU, which is much faster)."""
    sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
    import torch
    from bench_models import build_models
    from safetensors.torch import save_file

    from trainer.models.single_file import to_original_layout

    m = build_models(arch, device=device, seed=seed)
    components = {"unet": m.unet, "vae": m.vae, "text_encoder": m.text_encoders[0]}
    if m.arch == "sdxl":
        components["text_encoder_2"] = m.text_encoders[1]
    state = to_original_layout(components, m.arch)
    del m, components
    dtype = torch.float16 if precision == "fp16" else None
    state = {k: v.to("cpu", dtype if v.is_floating_point() else None).contiguous() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(path)


def write_tokenizer(cache_dir: Path) -> Path:
    """The CLIP tokenizers (SD1.5's, and SDXL's second: the same BPE vocabulary) as the
    folders sd-scripts' transformers loads from --tokenizer_cache_dir."""
    sys.path.insert(0, str(ROOT))
    from trainer.models.tokenizer import MODEL_MAX_LENGTH, write_bpe_files

    for name in (TOKENIZER_FOLDER, TOKENIZER2_FOLDER):  # sd-scripts sets the second's pad id itself
        folder = cache_dir / name
        write_bpe_files(folder)
        config = {"model_max_length": MODEL_MAX_LENGTH, "pad_token": "<|endoftext|>"}
        (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return cache_dir


def our_preset(model: Path, data: Path, out: Path, threads: int, steps: int, s: dict | None = None) -> dict:
    s = s or settings()
    demo = json.loads((ROOT / "presets" / "demo.json").read_text(encoding="utf-8"))
    preset = {k: v for k, v in demo.items() if k != "training_comment"}
    preset.update(
        {
            "pretrained_model_name_or_path": str(model),
            "train_data_dir": str(data),
            "output_dir": str(out),
            "output_name": "bench_ours",
            "logging_dir": "",
            "train_batch_size": s["batch"],
            "max_resolution": f"{s['resolution']},{s['resolution']}",
            "enable_bucket": False,
            "network_dim": s["rank"],
            "network_alpha": s["alpha"],
            "mixed_precision": s["precision"],
            "gradient_checkpointing": s["gradient_checkpointing"],
            "network_train_unet_only": not s["train_text_encoder"],
            "sdxl": s["arch"] == "sdxl",
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


def sd_scripts_script(s: dict) -> str:
    return "sdxl_train_network.py" if s["arch"] == "sdxl" else "train_network.py"


def sd_scripts_args(
    model: Path, data: Path, out: Path, tokenizers: Path, steps: int, s: dict | None = None
) -> list[str]:
    """sd-scripts' arguments for the same run (demo preset's learning rates, seed)."""
    s = s or settings()
    demo = json.loads((ROOT / "presets" / "demo.json").read_text(encoding="utf-8"))
    extra = ["--gradient_checkpointing"] if s["gradient_checkpointing"] else []
    if not s["train_text_encoder"]:
        extra.append("--network_train_unet_only")
        if s["arch"] == "sdxl":  # ours caches them whenever the TE is frozen (train_network.py cannot)
            extra.append("--cache_text_encoder_outputs")
    return [
        *("--pretrained_model_name_or_path", str(model), "--train_data_dir", str(data)),
        *("--output_dir", str(out), "--output_name", "bench_sd_scripts", "--save_model_as", "safetensors"),
        *("--resolution", f"{s['resolution']},{s['resolution']}", "--train_batch_size", str(s["batch"])),
        *("--caption_extension", ".txt", "--max_train_steps", str(steps), "--seed", str(demo["seed"])),
        *(
            "--network_module",
            "networks.lora",
            "--network_dim",
            str(s["rank"]),
            "--network_alpha",
            str(s["alpha"]),
        ),
        *("--optimizer_type", "AdamW", "--learning_rate", str(demo["learning_rate"])),
        *("--unet_lr", str(demo["unet_lr"]), "--text_encoder_lr", str(demo["text_encoder_lr"])),
        *("--lr_scheduler", "constant", "--mixed_precision", s["precision"], "--save_precision", "fp16"),
        *("--cache_latents", "--sdpa", "--max_data_loader_n_workers", "0"),
        *("--tokenizer_cache_dir", str(tokenizers)),
        *extra,
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
    vram = [r["vram_b"] for r in records if r.get("vram_b") is not None]  # on cuda only
    steps_vram = [r["vram_b"] for r in records[1:] if r.get("vram_b") is not None]
    return {
        "s_per_step": round(statistics.median(gaps), 4),
        "step_times": [round(g, 4) for g in gaps],
        "first_step_s": round(steps[0]["t"] - start, 2),
        "peak_rss_gib": round(max(hwm) * 1024 / GIB, 3),
        "steps_peak_rss_gib": round(max(after_first) * 1024 / GIB, 3) if steps[0].get("reset") else None,
        "peak_vram_gib": round(max(vram) / GIB, 3) if vram else None,
        "steps_peak_vram_gib": round(max(steps_vram) / GIB, 3) if steps_vram else None,
        "wall_s": round(time.time() - start, 1),
    }


def _median_side(runs: list[dict]) -> dict:
    keys = ("s_per_step", "first_step_s", "peak_rss_gib", "steps_peak_rss_gib", "peak_vram_gib", "wall_s")
    keys += ("steps_peak_vram_gib",)
    side = {k: statistics.median(r[k] for r in runs) for k in keys if all(r.get(k) is not None for r in runs)}
    side.setdefault("peak_vram_gib", None)  # None: no CUDA in that process
    side["runs"] = runs
    return side


def _pythonpath(first: Path) -> str:
    """`first`, then the caller's PYTHONPATH (on the GPU machine: the carried wheels)."""
    return os.pathsep.join(p for p in (str(first), os.environ.get("PYTHONPATH", "")) if p)


def sides(s: dict, sd_dir: Path, sd_python: str, files: dict, threads: int, steps: int) -> dict:
    """(command, environment, folder) of each side; `files`: model, data, tokenizers, tmp."""
    tmp = files["tmp"]
    preset_path = tmp / "ours.json"
    preset = our_preset(files["model"], files["data"], tmp / "out_ours", threads, steps, s)
    preset_path.write_text(json.dumps(preset), encoding="utf-8")
    base = {
        k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "TRAINER_SET_OMP_WAIT_POLICY")
    }
    if s["device"] == "cpu":
        base["CUDA_VISIBLE_DEVICES"] = ""  # both programs take a GPU whenever they see one
    args = sd_scripts_args(files["model"], files["data"], tmp / "out_sd", files["tokenizers"], steps, s)
    return {
        "ours": (
            [sys.executable, "-m", "trainer", "--config", str(preset_path)],
            {**base, "PYTHONPATH": _pythonpath(ROOT)},
            ROOT,
        ),
        "reference": (
            [sd_python, str(sd_dir / sd_scripts_script(s)), *args],
            {
                **base,
                "OMP_NUM_THREADS": str(threads),
                "HF_HUB_OFFLINE": "1",
                "PYTHONPATH": _pythonpath(sd_dir),
            },
            sd_dir,
        ),
    }


def _ratio(pairs: list, key: str) -> float | None:
    if any(o.get(key) is None or not r.get(key) for o, r in pairs):
        return None
    return round(statistics.median(o[key] / r[key] for o, r in pairs), 3)


def compare(args, tmp: Path, write_dataset) -> dict:
    """Alternate whole runs of ours and sd-scripts; the median of each side and the ratios."""
    s = settings(args)
    sd_dir = Path(args.sd_scripts).resolve()
    sd_python = args.sd_scripts_python or str(sd_dir / "venv" / "bin" / "python")
    if not (sd_dir / sd_scripts_script(s)).is_file():
        raise SystemExit(f"--sd-scripts {sd_dir}: no {sd_scripts_script(s)} there")
    precision = getattr(args, "model_precision", "fp16")
    model = Path(args.model_file) if args.model_file else tmp / f"{s['arch']}-random-{precision}.safetensors"
    if not model.exists():
        print(f"writing the random {s['arch']} checkpoint ({precision}) to {model} ...", file=sys.stderr)
        command = [sys.executable, __file__, "write-model", str(model), precision, s["arch"], s["device"]]
        subprocess.run(command, check=True, cwd=ROOT)
    files = {
        "model": model,
        "data": write_dataset(tmp / "data", images=s["images"], resolution=s["resolution"]),
        "tokenizers": write_tokenizer(tmp / "tokenizers"),
        "tmp": tmp,
    }
    threads = args.threads or 2
    commands = sides(s, sd_dir, sd_python, files, threads, args.warmup + args.steps + 1)
    runs: dict[str, list[dict]] = {"ours": [], "reference": []}
    for i in range(args.runs):
        for side in ("ours", "reference") if i % 2 == 0 else ("reference", "ours"):
            command, env, cwd = commands[side]
            log = tmp / f"{side}-{i}.log"
            result = run_once(command, env, cwd, tmp / f"{side}-{i}.jsonl", log, args.warmup)
            runs[side].append(result)
            vram = f", GPU peak {result['peak_vram_gib']} GiB" if result["peak_vram_gib"] is not None else ""
            print(
                f"  run {i + 1} {side}: {result['s_per_step']} s/step, peak {result['peak_rss_gib']} GiB"
                f"{vram}, first step {result['first_step_s']} s",
                file=sys.stderr,
            )
    ours, ref = _median_side(runs["ours"]), _median_side(runs["reference"])
    pairs = list(zip(runs["ours"], runs["reference"], strict=True))
    name = f"sd-scripts {sd_scripts_script(s)}"
    return {
        "ours": ours,
        "reference": {**ref, "name": name, "dir": str(sd_dir), "python": sd_python},
        "ratio": _ratio(pairs, "s_per_step"),
        "memory_ratio": _ratio(pairs, "peak_rss_gib"),
        "vram_ratio": _ratio(pairs, "peak_vram_gib"),
        "first_step_ratio": _ratio(pairs, "first_step_s"),
        "settings": {
            **s,
            "precision": "fp32" if s["precision"] == "no" else s["precision"],
            "attention": "sdpa",
            "latents_cached": True,
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
        more = sys.argv[3:] + ["fp16", "sd15", "cpu"][len(sys.argv[3:]) :]  # precision, arch, device
        write_model(Path(sys.argv[2]), precision=more[0], arch=more[1], device=more[2])
