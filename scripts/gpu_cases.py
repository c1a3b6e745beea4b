"""The GPU check's training cases, each in its own process with its own time limit.

    python scripts/gpu_cases.py --out DIR [--budget 280] [--only fp16,bf16]   # the driver
    python scripts/gpu_cases.py --case fp16 --json FILE                       # one case

The driver starts one process per case (a crash, a hang or a CUDA error stays in its
case), stops each at its limit, skips a case that would overrun `--budget`, and writes
DIR/cases.json (and each case's output in DIR/cases.log): per case its status (passed,
failed, timeout, skipped), seconds, peak GPU memory (torch.cuda.max_memory_allocated, MiB),
seconds per step, and what it checked. Cases train the tiny models (trainer.models.tiny) on
a toy dataset: they prove the CUDA paths run and step, not the speed of real models
(scripts/bench.py measures those). Without CUDA every case is skipped. Exit 1 when a case
failed or timed out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402 - after the path: the engine is imported from this checkout

MIB = 2**20


# ---- what the cases train on --------------------------------------------------------------
def _dataset(root: Path, n: int = 4, size: int = 64) -> Path:
    from PIL import Image

    folder = root / "data" / "1_toy"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = Image.new("RGB", (size, size), "white")
        img.paste((220, 20, 20), (8 + 4 * i, 8 + 4 * i, 40 + 4 * i, 40 + 4 * i))
        img.save(folder / f"img{i}.png")
        (folder / f"img{i}.txt").write_text("toy, red square", encoding="utf-8")
    return folder.parent


def _settings(tmp: Path, arch: str = "sd15", **over) -> dict:
    from trainer.models.tiny import write_tiny_model

    model = write_tiny_model(arch, "diffusers", tmp / f"tiny_{arch}", seed=0)
    values = {
        "pretrained_model_name_or_path": str(model),
        "train_data_dir": str(_dataset(tmp)),
        "output_dir": str(tmp / "out"),
        "output_name": "gpu",
        "mixed_precision": "bf16",
        "optimizer": "AdamW",
        "learning_rate": 1e-3,
        "train_batch_size": 2,
        "max_train_steps": 8,
        "max_resolution": "64,64",
        "min_bucket_reso": 64,
        "max_bucket_reso": 128,
        "network_dim": 4,
        "network_alpha": 4,
        "seed": 3,
        "cache_latents": True,
        "network_train_unet_only": True,
        "sdxl": arch == "sdxl",
    }
    values.update(over)
    return values


def _run(tmp: Path, arch: str = "sd15", **over):
    """A prepared Run, as the loop gets it."""
    from trainer.config import config_from_dict
    from trainer.data.resolved import resolve_dataset
    from trainer.plan.training_plan import plan_dataset
    from trainer.run.train import Run

    cfg, _ = config_from_dict(_settings(tmp, arch, **over))
    prepared = resolve_dataset(cfg)
    run = Run(cfg, plan_dataset(prepared), prepared, lambda event: None, threading.Event())
    run.prepare()
    run.network.train()
    return run


def _steps(run, steps: int = 6, warmup: int = 2) -> dict:
    """Train warmup + steps optimizer steps as the loop does; checks the losses are finite,
    the optimizer (the fp16 grad scaler's, when there is one) really stepped, the LoRA moved."""
    generator = torch.Generator(device=run.device).manual_seed(0)
    before = [p.detach().clone() for p in run.params]
    stepped, losses, t0 = 0, [], 0.0

    def batches():
        epoch = 1
        while True:
            yield from (b for b in run.loader.epoch(epoch) if b is not None)
            epoch += 1

    source = batches()
    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = run.step_loss(next(source), generator)
        run.acc.backward(loss)
        run.optimizer_step()
        stepped += not getattr(run.optimizer, "step_was_skipped", False)
        losses.append(float(loss.detach()))
    torch.cuda.synchronize()
    per_step = (time.perf_counter() - t0) / steps
    assert all(map(_finite, losses)), f"losses {losses}"
    assert stepped > 0, "the grad scaler skipped every step: the optimizer never stepped"
    assert all(torch.isfinite(p).all() for p in run.params), "LoRA weights not finite"
    assert any(not torch.equal(b, p) for b, p in zip(before, run.params, strict=True)), "LoRA did not move"
    scaler = run.acc.scaler
    out = {"s_per_step": round(per_step, 4), "optimizer_steps": stepped, "of_steps": warmup + steps}
    if scaler is not None:
        out["grad_scale"] = float(scaler.get_scale())
        assert out["grad_scale"] > 0 and _finite(out["grad_scale"])
    return out


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def _whole_run(values: dict) -> list:
    """train_with_events in this process; the events (raises unless it finished)."""
    from trainer.config import config_from_dict
    from trainer.run.train import train_with_events

    cfg, _ = config_from_dict(values)
    events: list = []
    code = train_with_events(cfg, events.append)
    errors = [e.data for e in events if e.kind == "error"]
    assert code == 0, f"exit {code}: {errors}"
    assert [e for e in events if e.kind == "finished"], "no finished event"
    return events


# ---- the cases ------------------------------------------------------------------------------
def case_fp16(tmp: Path) -> dict:
    run = _run(tmp, mixed_precision="fp16", network_train_unet_only=False)
    assert run.acc.scaler is not None and run.models.unet.dtype == torch.float16
    return _steps(run)


def case_bf16(tmp: Path) -> dict:
    return _steps(_run(tmp, mixed_precision="bf16", network_train_unet_only=False))


def case_full_fp16(tmp: Path) -> dict:
    run = _run(tmp, mixed_precision="fp16", full_fp16=True)
    assert all(p.dtype == torch.float16 for p in run.params)
    return _steps(run)  # fp32 optimizer math: the weights stay finite (trainer.optim.fp32_math)


def case_fp8_base(tmp: Path) -> dict:
    run = _run(tmp, fp8_base=True, gradient_checkpointing=True)
    assert any(p.dtype == torch.float8_e4m3fn for p in run.models.unet.parameters())
    return _steps(run)


def case_fp8_base_no_checkpointing(tmp: Path) -> dict:
    """Peak memory without gradient checkpointing (preflight warns: fp16 copies kept)."""
    return _steps(_run(tmp, fp8_base=True))


def case_mem_eff_attn(tmp: Path) -> dict:
    run = _run(tmp, mem_eff_attn=True)
    kinds = {type(p).__name__ for p in run.models.unet.attn_processors.values()}
    assert kinds == {"EfficientSDPAProcessor"}, kinds
    return {**_steps(run), "processors": sorted(kinds)}


def case_te_checkpointing(tmp: Path) -> dict:
    run = _run(tmp, network_train_unet_only=False, gradient_checkpointing=True)
    assert all(te.is_gradient_checkpointing for te in run.models.text_encoders)
    return _steps(run)


def case_sdxl_fp16(tmp: Path) -> dict:
    """SDXL in fp16 with the VAE encoding every step (its fp16 overflow: upcast)."""
    run = _run(tmp, "sdxl", mixed_precision="fp16", cache_latents=False)
    latents, _ = run._latents(next(b for b in run.loader.epoch(1) if b is not None))
    assert torch.isfinite(latents).all()
    return {**_steps(run), "vae_dtype": str(run.models.vae.dtype)}


def case_no_latent_cache(tmp: Path) -> dict:
    run = _run(tmp, mixed_precision="fp16", cache_latents=False)
    assert run.latent_cache is None
    return _steps(run)


def case_sampling(tmp: Path) -> dict:
    values = _settings(tmp, sample_every_n_steps=4, sample_prompts="a toy --w 64 --h 64 --s 4")
    t0 = time.perf_counter()
    _whole_run(values)
    images = list((tmp / "out").rglob("*.png"))
    assert images, "no sample image"
    return {"samples": len(images), "run_s": round(time.perf_counter() - t0, 2)}


def case_resume(tmp: Path) -> dict:
    values = _settings(tmp, max_train_steps=0, epoch=2, save_every_n_epochs=1, save_state=True)
    values["output_name"] = "first"
    _whole_run(values)
    states = sorted(p for p in (tmp / "out").iterdir() if p.is_dir() and p.name.endswith("-state"))
    assert states, "no state folder saved"
    values.update(output_name="again", resume=str(states[0]))
    events = _whole_run(values)
    finished = next(e for e in events if e.kind == "finished")
    return {"resumed_from": states[0].name, "steps": finished.data["steps"]}


def case_nccl_two_processes(tmp: Path) -> dict | None:
    if torch.cuda.device_count() < 2:
        return None  # skipped: one GPU
    preset = tmp / "preset.json"
    preset.write_text(json.dumps(_settings(tmp, num_processes=2, max_train_steps=4)), encoding="utf-8")
    cmd = [sys.executable, "-m", "trainer", "--config", str(preset), "--events", "jsonl"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=100, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert any(e["kind"] == "finished" for e in events)
    return {"processes": 2}


def case_out_of_memory_message(tmp: Path) -> dict:
    """Allocate past the card: the user gets the out-of-memory message and its ways out."""
    from trainer.config import TrainingConfig
    from trainer.run.guards import explain_failure

    total = torch.cuda.get_device_properties(0).total_memory
    try:
        torch.empty(int(total * 1.2), dtype=torch.uint8, device="cuda")
    except torch.cuda.OutOfMemoryError as exc:
        message, hint = explain_failure(TrainingConfig(mixed_precision="bf16", train_batch_size=4), exc)
    else:
        raise AssertionError("allocating more than the card did not fail")
    assert "ran out of memory" in message and "gradient_checkpointing" in hint, (message, hint)
    return {"message": message[:200], "hint": hint[:300]}


# name -> (time limit in seconds, case)
CASES: dict[str, tuple[int, Callable[[Path], dict | None]]] = {
    "fp16": (60, case_fp16),
    "bf16": (60, case_bf16),
    "full_fp16": (60, case_full_fp16),
    "fp8_base": (60, case_fp8_base),
    "fp8_base_no_checkpointing": (60, case_fp8_base_no_checkpointing),
    "mem_eff_attn": (60, case_mem_eff_attn),
    "te_checkpointing": (60, case_te_checkpointing),
    "sdxl_fp16": (90, case_sdxl_fp16),
    "no_latent_cache": (60, case_no_latent_cache),
    "sampling": (90, case_sampling),
    "resume": (90, case_resume),
    "nccl_two_processes": (120, case_nccl_two_processes),
    "out_of_memory_message": (45, case_out_of_memory_message),
}


def run_case(name: str, out: Path) -> int:
    """One case in this process; its result as JSON in `out`."""
    result: dict = {"case": name}
    if not torch.cuda.is_available():
        result.update(status="skipped", why="no CUDA")
    else:
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                measured = CASES[name][1](Path(tmp))
            if measured is None:
                result.update(status="skipped", why="needs 2 GPUs")
            else:
                result.update(status="passed", **measured)
        except Exception as exc:  # noqa: BLE001 - the report says what failed
            traceback.print_exc()
            result.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:1500])
        result["seconds"] = round(time.perf_counter() - t0, 2)
        result["peak_mib"] = round(torch.cuda.max_memory_allocated() / MIB, 1)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0 if result["status"] != "failed" else 1


def drive(names: list[str], out_dir: Path, budget: float) -> int:
    """Every case in its own process, each under its limit, all within `budget` seconds."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start, results = time.monotonic(), []
    with tempfile.TemporaryDirectory() as tmp, open(out_dir / "cases.log", "w", encoding="utf-8") as log:
        for name in names:
            limit = CASES[name][0]
            if time.monotonic() - start + limit > budget:
                results.append({"case": name, "status": "skipped", "why": "too little time left"})
                continue
            result_file = Path(tmp) / f"{name}.json"
            log.write(f"==== {name}\n")
            log.flush()
            cmd = [sys.executable, str(Path(__file__).resolve()), "--case", name, "--json", str(result_file)]
            t0 = time.monotonic()
            try:
                subprocess.run(
                    cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, timeout=limit, check=False
                )
            except subprocess.TimeoutExpired:
                results.append({"case": name, "status": "timeout", "limit_s": limit})
                continue
            if result_file.is_file():
                results.append(json.loads(result_file.read_text(encoding="utf-8")))
            else:
                results.append({"case": name, "status": "failed", "error": "the case process crashed"})
            results[-1]["process_s"] = round(time.monotonic() - t0, 2)
            print(json.dumps(results[-1])[:300], flush=True)
    summary = {"total_s": round(time.monotonic() - start, 1), "cases": results}
    (out_dir / "cases.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return 1 if any(r["status"] in ("failed", "timeout") for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", choices=sorted(CASES), help="run this one case in this process")
    p.add_argument("--json", type=Path, help="--case: where its result goes")
    p.add_argument("--out", type=Path, default=Path("/tmp/gpu_cases"), help="the driver's folder")
    p.add_argument("--budget", type=float, default=280, help="seconds for all cases together")
    p.add_argument("--only", default="", help="comma-separated case names (default: all)")
    args = p.parse_args(argv)
    if args.case:
        return run_case(args.case, args.json or args.out / f"{args.case}.json")
    names = [n for n in args.only.split(",") if n] or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        p.error(f"unknown case(s): {', '.join(unknown)}")
    return drive(names, args.out, args.budget)


if __name__ == "__main__":
    sys.exit(main())
