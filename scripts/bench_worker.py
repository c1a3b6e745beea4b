"""One side of the benchmark, in a process of its own: ours, or the diffusers + peft reference.

Each side runs in its own process so that its memory (process RSS on a CPU, the CUDA
allocator's peak on a GPU) is its own. scripts/bench.py starts both and drives them over
stdin / stdout, one step at a time, alternating, so that a noisy machine slows both alike.

    python scripts/bench_worker.py --side {ours,reference} --arch A --device D --preset JSON \
        --resolution R [--same-env]

Commands on stdin: `step N` (run N steps, answer their times), `done` (answer the memory
peaks and exit). Answers are single stdout lines starting with `@@bench ` and a JSON
object; everything else on stdout / stderr is the libraries' chatter.

- ours: trainer.run.train.Run built from the preset with these in-memory models
  (`Run.prepare(models)`), stepped as its loop steps it (`Run.step_loss`, backward,
  `Run.optimizer_step`), with its caches, loader and settings.
- reference: the recipe of diffusers' train_text_to_image_lora / train_dreambooth_lora:
  `add_adapter(LoraConfig(...))` on the same layers with the same rank and alpha, LoRA
  weights cast to fp32, autocast, torch AdamW, and the VAE and text encoder(s) run every
  step (no caches). Its images are decoded and tokenised once up front, which only
  flatters it.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Each side starts the way its users start it: ours like `python -m trainer` (the trainer
# package loads before torch and decides how idle threads wait from the preset's threads,
# trainer/run/cpu_threads.py), the reference like a plain diffusers script (torch first,
# libgomp's stock settings), unless --same-env gives it our decision too.
_SIDE = sys.argv[sys.argv.index("--side") + 1 :][:1] if "--side" in sys.argv else []
if _SIDE == ["ours"] or "--same-env" in sys.argv:
    from trainer.run.cpu_threads import apply_cpu_thread_defaults

    _threads = json.loads(sys.argv[sys.argv.index("--preset") + 1]).get("num_cpu_threads_per_process")
    apply_cpu_thread_defaults(threads=_threads, processes=1)

import torch  # noqa: E402 - after the trainer, on our side (see above)
from bench_models import build_models  # noqa: E402 - scripts/ is on the path when run as a script

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
GIB = 1024**3


def _answer(payload: dict) -> None:
    print("@@bench " + json.dumps(payload), flush=True)


# ---- memory: the peak over the measured steps, and over everything before them ----------
def _rss_peak_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_rss_peak() -> bool:
    """Linux lets a process reset its own peak RSS (VmHWM); elsewhere the peak is lifetime."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / GIB
    rss = _rss_peak_bytes()
    if rss is None:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return rss / GIB


# ---- ours -----------------------------------------------------------------------------------
def make_ours(cfg, models) -> tuple[Callable[[], torch.Tensor], dict]:
    """Our trainer's Run, prepared with `models`; returns (one step, facts)."""
    from trainer.data.resolved import resolve_dataset
    from trainer.plan.training_plan import plan_dataset
    from trainer.run.train import Run

    prepared = resolve_dataset(cfg)
    plan = plan_dataset(prepared)
    run = Run(cfg, plan, prepared, lambda event: None, threading.Event())
    run.prepare(models)
    generator = torch.Generator(device=run.device).manual_seed(cfg.seed)
    run.network.train()
    batches = _endless(run.loader)

    def step() -> torch.Tensor:
        loss = run.step_loss(next(batches), generator)
        run.acc.backward(loss)
        run.optimizer_step()
        return loss

    facts = {
        "lora_layers": len(run.network.loras),
        "trainable_params": sum(p.numel() for p in run.params),
        "latent_cache": run.latent_cache is not None,
        "text_cache": run.text_cache is not None,
    }
    return step, facts


def _endless(loader) -> Iterator[dict]:
    epoch = 1
    while True:
        for batch in loader.epoch(epoch):
            if batch is not None:
                yield batch
        epoch += 1


# ---- the reference --------------------------------------------------------------------------
def _load_pixels(data_dir: Path, resolution: int) -> tuple[torch.Tensor, list[str]]:
    """Every image of the benchmark set as [-1, 1] tensors, and its caption."""
    import numpy as np
    from PIL import Image

    images, captions = [], []
    for path in sorted(p for p in data_dir.rglob("*.png")):
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB").resize((resolution, resolution)), dtype=np.float32)
        images.append(torch.from_numpy(pixels).permute(2, 0, 1) / 127.5 - 1.0)
        captions.append(path.with_suffix(".txt").read_text(encoding="utf-8").strip())
    return torch.stack(images), captions


def make_reference(
    cfg, models, device: torch.device, resolution: int
) -> tuple[Callable[[], torch.Tensor], dict]:
    """The diffusers + peft LoRA recipe on the same models and settings; (one step, facts)."""
    import torch.nn.functional as F
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig, inject_adapter_in_model

    torch.set_num_threads(cfg.num_cpu_threads_per_process)
    torch.manual_seed(cfg.seed)
    mixed = cfg.mixed_precision if device.type == "cuda" or cfg.mixed_precision == "bf16" else "no"
    amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed)
    train_te = not cfg.network_train_unet_only
    unet, vae, tes, tokenizers = models.unet, models.vae, models.text_encoders, models.tokenizers
    sdxl = models.arch == "sdxl"
    if sdxl:
        vae.to(dtype=torch.float32)  # diffusers' SDXL scripts keep the stock VAE in fp32
    for module in (unet, vae, *tes):
        module.to(device)
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    lora = {"r": cfg.network_dim, "lora_alpha": cfg.network_alpha, "init_lora_weights": "gaussian"}
    unet.add_adapter(LoraConfig(target_modules=UNET_TARGETS, **lora))
    groups = [
        {"params": [p for p in unet.parameters() if p.requires_grad], "lr": cfg.unet_lr or cfg.learning_rate}
    ]
    if train_te:
        for te in tes:
            # what transformers' add_adapter does (it asks for a newer peft than diffusers)
            inject_adapter_in_model(LoraConfig(target_modules=TE_TARGETS, **lora), te)
            te.train()
            if cfg.gradient_checkpointing:  # as diffusers' dreambooth LoRA scripts do
                te.gradient_checkpointing_enable()
        groups.append(
            {
                "params": [p for te in tes for p in te.parameters() if p.requires_grad],
                "lr": cfg.text_encoder_lr or cfg.learning_rate,
            }
        )
    unet.train()
    trained = [unet, *tes] if train_te else [unet]
    cast_training_params(trained, dtype=torch.float32)  # LoRA weights in fp32
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    scaler = torch.amp.GradScaler(device.type, enabled=mixed == "fp16")
    pixels, captions = _load_pixels(Path(cfg.train_data_dir), resolution)
    scheduler_ddpm, scale = models.noise_scheduler, models.latent_scale
    batch, state = cfg.train_batch_size, {"at": 0}

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    def encode_text(chosen: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        ids = [
            tok(
                chosen,
                padding="max_length",
                max_length=tok.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(device)
            for tok in tokenizers
        ]
        with torch.set_grad_enabled(train_te), autocast():
            if not sdxl:
                return tes[0](ids[0], return_dict=False)[0], None
            out1 = tes[0](ids[0], output_hidden_states=True)
            out2 = tes[1](ids[1], output_hidden_states=True)
            return torch.cat([out1.hidden_states[-2], out2.hidden_states[-2]], dim=-1), out2.text_embeds

    def step() -> torch.Tensor:
        index = [(state["at"] + i) % len(captions) for i in range(batch)]
        state["at"] += batch
        images = pixels[index].to(device, non_blocking=True)
        with torch.no_grad():
            latents = vae.encode(images.to(vae.dtype)).latent_dist.sample() * scale
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, scheduler_ddpm.config.num_train_timesteps, (batch,), device=device)
        noisy = scheduler_ddpm.add_noise(latents, noise, timesteps)
        hidden, pooled = encode_text([captions[i] for i in index])
        extra = {}
        if sdxl:
            time_ids = torch.tensor(
                [[resolution, resolution, 0, 0, resolution, resolution]] * batch,
                device=device,
                dtype=hidden.dtype,
            )
            extra["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
        with autocast():
            pred = unet(noisy.to(unet.dtype), timesteps, hidden.to(unet.dtype), return_dict=False, **extra)[0]
        loss = F.mse_loss(pred.float(), noise.float(), reduction="mean")
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        if cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    facts = {
        "lora_layers": sum(1 for m in unet.modules() if hasattr(m, "lora_A") and len(m.lora_A))
        + (
            sum(1 for te in tes for m in te.modules() if hasattr(m, "lora_A") and len(m.lora_A))
            if train_te
            else 0
        ),
        "trainable_params": sum(p.numel() for p in params),
        "latent_cache": False,
        "text_cache": False,
    }
    return step, facts


# ---- the process ----------------------------------------------------------------------------
def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--side", choices=["ours", "reference"], required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--preset", required=True, help="the run's settings, a JSON object (our keys)")
    p.add_argument("--same-env", action="store_true", help="reference: with our CPU-thread defaults")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    from trainer.config import config_from_dict

    cfg, _ = config_from_dict(json.loads(args.preset))
    device = torch.device(args.device)
    torch.set_num_threads(cfg.num_cpu_threads_per_process)
    on_gpu = device.type == "cuda"
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.mixed_precision, torch.float32)
    t0 = time.perf_counter()
    models = build_models(
        args.arch, device=args.device, dtype=dtype if on_gpu else torch.float32, seed=cfg.seed
    )
    if args.side == "ours":
        step, facts = make_ours(cfg, models)
    else:
        step, facts = make_reference(cfg, models, device, args.resolution)
    setup_peak = _peak(device)
    if on_gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    reset = on_gpu or _reset_rss_peak()
    _answer({"ready": True, "setup_s": round(time.perf_counter() - t0, 2), **facts})
    for line in sys.stdin:
        command = line.split()
        if command[:1] == ["step"]:
            times, loss = [], None
            for _ in range(int(command[1])):
                start = time.perf_counter()
                loss = step()
                if on_gpu:
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            _answer({"times": times, "loss": float(loss)})
        elif command[:1] == ["done"]:
            _answer(
                {
                    "peak_mem_gib": round(_peak(device), 3),
                    "setup_peak_mem_gib": round(setup_peak, 3),
                    "peak_kind": (
                        "cuda max_memory_allocated"
                        if on_gpu
                        else "process peak RSS (VmHWM)" + ("" if reset else ", whole process")
                    ),
                }
            )
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
