"""The GPU memory and time estimate (trainer.estimate) on the tiny models.

The estimate runs the trainer's own step on meta tensors; here it is held to a real CPU
step of the same tiny model, measured by the same tracker (tensor bytes, not RSS), and
to what a user would notice: more memory with a bigger batch or resolution, less with
gradient checkpointing, caches or an 8-bit optimizer, the same answer for a model's
diffusers folder and its single file, a verdict and advice against a VRAM size, a
repeat that is instant, and the dry-run's "estimate".
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from tests.trainer.test_train_e2e import make_toy_dataset
from trainer.config import config_from_dict


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.estimate import cache

    monkeypatch.setenv("LORA_GUI_ESTIMATES", str(tmp_path / "estimates"))
    cache.forget_memory()


def _cfg(model: Path, data: Path | str = "/nonexistent", **over):
    preset = {
        "pretrained_model_name_or_path": str(model),
        "train_data_dir": str(data),
        "output_dir": "/tmp/unused-out",
        "output_name": "est",
        "mixed_precision": "bf16",
        "optimizer": "AdamW",
        "network_dim": 8,
        "network_alpha": 8,
        "train_batch_size": 2,
        "max_resolution": "128,128",
        "cache_latents": False,
        "seed": 1,
    }
    preset.update(over)
    cfg, _ = config_from_dict(preset)
    return cfg


def _step(cfg) -> dict:
    """The measured step of `cfg` at max_resolution (no cache)."""
    from trainer.estimate.estimate import largest_bucket, measured_step

    return measured_step(cfg, largest_bucket(cfg), use_cache=False)[0]


def _real_step_peak(cfg) -> int:
    """Peak live tensor bytes of the trainer's real second step on the CPU: what is on "the
    GPU" (the Run's rule: the VAE and frozen text encoders leave it once cached) plus
    everything the step allocates."""
    from trainer.data.resolved import resolve_dataset
    from trainer.estimate.tracker import MemoryTracker
    from trainer.plan.training_plan import plan_dataset
    from trainer.run.train import Run

    prepared = resolve_dataset(cfg)
    run = Run(cfg, plan_dataset(prepared), prepared, lambda event: None, threading.Event())
    run.prepare()
    run.network.train()
    generator = torch.Generator().manual_seed(0)
    batches = (b for b in run.loader.epoch(1) if b is not None)

    def step(batch: dict) -> None:
        run.acc.backward(run.step_loss(batch, generator))
        run.optimizer_step()

    step(next(batches))  # the optimizer state exists from here on, as in every later step
    batch = next(batches)
    m = run.models
    on_gpu = [m.unet, run.network]
    on_gpu += [] if run.latent_cache is not None else [m.vae]
    on_gpu += m.text_encoders if run.text_cache is None or run.train_te else []
    live = [t for module in on_gpu for t in (*module.parameters(), *module.buffers())]
    live += [t for state in run.optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
    live += [t for t in batch.values() if torch.is_tensor(t)] + [run.alphas_cumprod]
    for cache in (run.latent_cache, run.text_cache):
        live += [t for pair in (cache or {}).values() for t in pair if t is not None]
    tracker = MemoryTracker(reuse_meta_shapes=False)
    tracker.adopt(live)
    with tracker:
        step(batch)
    return tracker.peak


@pytest.mark.slow  # a real step under the tracker: a minute each on 2 busy cores
@pytest.mark.parametrize(
    "over",
    [{}, {"gradient_checkpointing": True, "cache_latents": True, "network_train_unet_only": True}],
    ids=["plain", "checkpointing-caches"],
)
def test_estimate_matches_the_real_cpu_step_of_the_tiny_model(tiny_model, tmp_path: Path, over: dict):
    data = make_toy_dataset(tmp_path / "data", n=4, size=128)
    cfg = _cfg(tiny_model("sd15"), data, mixed_precision="no", output_dir=str(tmp_path / "out"), **over)
    real = _real_step_peak(cfg)
    estimated = _step(cfg)["step_peak"]
    assert abs(estimated - real) / real < 0.15, (estimated, real)


def test_estimate_grows_with_batch_and_resolution(tiny_model):
    from trainer.estimate import estimate

    model = tiny_model("sd15")

    def peak(**over) -> int:
        return estimate(_cfg(model, **over), use_cache=False, advice=False).allocated_peak_bytes

    assert peak(train_batch_size=1) < peak(train_batch_size=2) < peak(train_batch_size=4)
    assert peak(max_resolution="64,64") < peak(max_resolution="128,128") < peak(max_resolution="192,192")


def test_estimate_falls_with_checkpointing_caches_and_an_8bit_optimizer(tiny_model):
    model = tiny_model("sd15")
    base = _step(_cfg(model))
    assert _step(_cfg(model, gradient_checkpointing=True))["step_peak"] < base["step_peak"]
    assert _step(_cfg(model, cache_latents=True))["step_peak"] < base["step_peak"]
    text_cached = _step(_cfg(model, network_train_unet_only=True, cache_text_encoder_outputs=True))
    assert text_cached["step_peak"] < base["step_peak"]
    assert text_cached["text_bytes"] > 0
    # rank 128: the LoRA matrices reach bitsandbytes' 4096-element minimum for 8-bit state
    adamw, eight_bit = (_step(_cfg(model, network_dim=128, optimizer=o)) for o in ("AdamW", "AdamW8bit"))
    assert eight_bit["split"]["optimizer_state"] < adamw["split"]["optimizer_state"] * 0.6
    assert eight_bit["step_peak"] < adamw["step_peak"]


@pytest.mark.parametrize("arch", ["sd15", "sd2v", "sdxl"])
def test_every_architecture_from_its_folder_and_its_single_file(tiny_model, tiny_single_file, arch: str):
    from trainer.estimate import estimate

    flags = {"sdxl": {"sdxl": True}, "sd2v": {"v2": True, "v_parameterization": True}}.get(arch, {})
    folder = estimate(_cfg(tiny_model(arch), **flags), 8, use_cache=False)
    single = estimate(_cfg(tiny_single_file(arch), **flags), 8, use_cache=False)
    assert folder.arch == single.arch == {"sd15": "sd1", "sd2v": "sd2", "sdxl": "sdxl"}[arch]
    # a single file leaves no trace of the head count, so its derived U-Net may differ there
    assert abs(folder.allocated_peak_bytes - single.allocated_peak_bytes) < 0.02 * folder.allocated_peak_bytes
    assert folder.trainable_params == single.trainable_params > 0
    assert folder.verdict == "fits" and folder.seconds_per_step > 0 and folder.tflop_per_step >= 0


def test_a_repeat_is_instant_from_memory_and_from_disk(tiny_model):
    from trainer.estimate import cache, estimate

    cfg = _cfg(tiny_model("sd15"))
    first = estimate(cfg, 8)
    again = estimate(cfg, 8)
    cache.forget_memory()
    from_disk = estimate(cfg.model_copy(update={"output_name": "renamed", "learning_rate": 0.5}), 8)
    assert not first.cached and again.cached and from_disk.cached
    assert again.estimate_seconds < 0.5 and from_disk.estimate_seconds < 0.5
    assert again.allocated_peak_bytes == from_disk.allocated_peak_bytes == first.allocated_peak_bytes
    changed = estimate(cfg.model_copy(update={"network_dim": 16}), 8)
    assert not changed.cached


def test_a_run_that_does_not_fit_gets_the_smallest_change_that_does(tiny_model):
    from trainer.estimate import estimate
    from trainer.estimate.fit import FITS_SHARE, GIB, needed_bytes

    model = tiny_model("sd15")
    cfg = _cfg(model, cache_latents=True)
    needed = {
        gc: needed_bytes(
            estimate(_cfg(model, cache_latents=True, gradient_checkpointing=gc)).allocated_peak_bytes
        )
        / GIB
        for gc in (False, True)
    }
    vram = needed[True] / FITS_SHARE * 1.0001  # checkpointing just fits, without it it does not
    est = estimate(cfg, vram)
    assert est.verdict in ("tight", "does not fit") and est.fits is (est.verdict == "tight")
    assert est.recommended and est.recommended.startswith("gradient checkpointing")
    assert est.advice[-1]["fits"] and est.advice[-1]["settings"] == {"gradient_checkpointing": True}
    assert estimate(cfg, 24).verdict == "fits"


def test_dry_run_json_and_text_carry_the_estimate(tiny_model, demo_dataset, tmp_path: Path, capsys):
    from trainer.__main__ import main

    preset = tmp_path / "preset.json"
    settings = {
        "pretrained_model_name_or_path": str(tiny_model("sd15")),
        "train_data_dir": str(demo_dataset),
        "output_dir": str(tmp_path / "out"),
        "output_name": "demo",
        "max_resolution": "128,128",
        "network_dim": 8,
        "network_alpha": 4,
    }
    preset.write_text(json.dumps(settings), encoding="utf-8")
    assert main(["--config", str(preset), "--dry-run", "--json", "--vram", "12"]) == 0
    report = json.loads(capsys.readouterr().out)
    est = report["estimate"]
    assert est["vram_gib"] == 12 and est["fits"] is True and est["verdict"] == "fits"
    assert 0.6 < est["peak_vram_gib"] < 1 and est["seconds_per_step"] > 0 and est["advice"] == []
    assert est["run_seconds"] is not None and est["bucket"][0] * est["bucket"][1] <= 128 * 128
    assert main(["--config", str(preset), "--dry-run", "--gpu", "4090"]) == 0
    text = capsys.readouterr().out
    assert "Total steps" in text and "GPU memory and time (estimate)" in text and "RTX 4090" in text
    assert main(["--config", str(preset), "--dry-run", "--gpu", "GTX 9999"]) == 2
    assert "unknown GPU" in capsys.readouterr().err


def test_gpus_by_name_or_memory_and_the_time_model():
    from trainer.estimate.gpus import find_gpu, seconds_per_step

    assert find_gpu("GeForce RTX 4070 Ti").name == "RTX 4070 Ti"
    assert find_gpu("rtx 4070").name == "RTX 4070"
    assert find_gpu("NVIDIA A100-SXM4-40GB").name == "A100 80GB"
    assert find_gpu(vram_gib=12).name == "RTX 3060 12GB"  # the slowest 12 GB card: a safe time
    assert find_gpu(vram_gib=24).name == "RTX 3090"
    with pytest.raises(ValueError, match="unknown GPU"):
        find_gpu("Voodoo 2")
    slow, fast = find_gpu("3060"), find_gpu("4090")
    # compute-bound work scales with the card; launch-bound work does not
    assert seconds_per_step(2e13, 1000, 0, slow, "bf16") > 3 * seconds_per_step(2e13, 1000, 0, fast, "bf16")
    assert seconds_per_step(1e9, 50_000, 0, slow, "bf16") == seconds_per_step(1e9, 50_000, 0, fast, "bf16")
    assert seconds_per_step(2e13, 1000, 0, slow, "no") > seconds_per_step(2e13, 1000, 0, slow, "bf16")


def test_the_preflight_warning_only_for_a_run_that_certainly_does_not_fit(tiny_model):
    from trainer.estimate import estimate, fit_warning

    cfg = _cfg(tiny_model("sd15"))
    allocated = estimate(cfg).allocated_peak_bytes / 2**30
    assert fit_warning(cfg, allocated * 1.01) is None  # tight, perhaps, but not certain to fail
    warning = fit_warning(cfg, allocated * 0.5)
    assert warning and "will run out of memory" in warning
    assert (
        fit_warning(cfg.model_copy(update={"pretrained_model_name_or_path": "/no/such/model"}), 0.001) is None
    )


@pytest.mark.slow
def test_full_size_sd15_from_its_shipped_configs_is_near_the_published_measurement():
    """SimpleTuner measured 2.87 GiB for an SD1.5 LoRA (rank 16, 512 px, batch 1, bf16) on an H100."""
    configs = Path(__file__).resolve().parents[2] / "trainer" / "models" / "configs" / "sd15"
    cfg = _cfg(
        configs,
        max_resolution="512,512",
        network_dim=16,
        network_alpha=16,
        train_batch_size=1,
        cache_latents=True,
        network_train_unet_only=True,
    )
    step = _step(cfg)
    assert step["trainable_params"] == 6_782_976  # the LoRA BENCHMARKS.md counts for SD1.5 at rank 16
    assert abs(step["step_peak"] / 2**30 - 2.87) / 2.87 < 0.10
