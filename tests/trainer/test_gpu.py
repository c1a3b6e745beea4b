"""The CUDA paths of a training step on the tiny SD1.x model (skipped without a GPU).

fp16 and bf16 steps give a finite loss and move the LoRA, whose weights stay fp32 while
the frozen model is in half precision; a bf16 step queues without making the host wait;
AdamW8bit, the other bitsandbytes optimizers and xformers when they are installed;
channels-last and torch.compile.
scripts/gpu_check.sh runs these on a lent GPU.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.helpers import make_toy_dataset

pytestmark = pytest.mark.gpu


def _prepared_run(tmp: Path, model: Path, **over):
    from trainer.config import config_from_dict
    from trainer.data.resolved import resolve_dataset
    from trainer.plan.training_plan import plan_dataset
    from trainer.run.train import Run

    preset = {
        "pretrained_model_name_or_path": str(model),
        "train_data_dir": str(make_toy_dataset(tmp / "data")),
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
    }
    preset.update(over)
    cfg, _ = config_from_dict(preset)
    prepared = resolve_dataset(cfg)
    run = Run(cfg, plan_dataset(prepared), prepared, lambda event: None, threading.Event())
    run.prepare()
    run.network.train()
    return run


def _batches(run) -> Iterator[dict]:
    epoch = 1
    while True:
        yield from (b for b in run.loader.epoch(epoch) if b is not None)
        epoch += 1


def _train(run, steps: int) -> list[torch.Tensor]:
    """`steps` optimizer steps as the loop takes them; the losses (still on the GPU)."""
    generator = torch.Generator(device=run.device).manual_seed(0)
    batches, losses = _batches(run), []
    for _ in range(steps):
        loss = run.step_loss(next(batches), generator)
        run.acc.backward(loss)
        run.optimizer_step()
        losses.append(loss.detach())
    return losses


@pytest.mark.parametrize("precision,dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_half_precision_step_trains_fp32_lora_on_half_weights(tmp_path, tiny_model, precision, dtype) -> None:
    run = _prepared_run(
        tmp_path, tiny_model("sd15"), mixed_precision=precision, network_train_unet_only=False
    )  # the text encoder's LoRA too
    assert run.device.type == "cuda" and run.models.unet.dtype == dtype
    before = {k: v.clone() for k, v in run.network.state_dict().items()}
    losses = _train(run, 3)
    assert all(torch.isfinite(loss).all() for loss in losses)
    params = list(run.network.parameters())
    assert params and all(p.dtype == torch.float32 and p.device.type == "cuda" for p in params)
    after = run.network.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in after if "lora_up" in k)


def test_bf16_step_queues_without_waiting_for_the_gpu(tmp_path, tiny_model) -> None:
    run = _prepared_run(tmp_path, tiny_model("sd15"))
    assert run.text_cache is not None and run.latent_cache is not None
    _train(run, 2)  # first calls move schedules to the GPU once; those copies may wait
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host wait inside the step raises
    try:
        losses = _train(run, 2)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert all(torch.isfinite(loss).all() for loss in losses)


def test_cached_parts_leave_the_gpu(tmp_path, tiny_model) -> None:
    run = _prepared_run(tmp_path, tiny_model("sd15"))
    assert run.models.vae.device.type == "cpu"
    assert all(te.device.type == "cpu" for te in run.models.text_encoders)
    assert run.models.unet.device.type == "cuda"


def test_adamw8bit_trains(tmp_path, tiny_model) -> None:
    pytest.importorskip("bitsandbytes")
    run = _prepared_run(tmp_path, tiny_model("sd15"), optimizer="AdamW8bit")
    assert all(torch.isfinite(loss).all() for loss in _train(run, 3))


@pytest.mark.parametrize(
    "name",
    [
        "PagedAdamW32bit",
        "PagedLion8bit",
        "bitsandbytes.optim.AdEMAMix8bit",
        "bitsandbytes.optim.PagedAdEMAMix8bit",
    ],
)
def test_other_bitsandbytes_optimizers_train(tmp_path, tiny_model, name) -> None:
    pytest.importorskip("bitsandbytes")
    run = _prepared_run(tmp_path, tiny_model("sd15"), optimizer=name)
    assert type(run.optimizer.optimizer).__module__.startswith("bitsandbytes")
    assert all(torch.isfinite(loss).all() for loss in _train(run, 3))


def test_xformers_attention_trains(tmp_path, tiny_model) -> None:
    pytest.importorskip("xformers")
    run = _prepared_run(tmp_path, tiny_model("sd15"), xformers="xformers")
    assert all(torch.isfinite(loss).all() for loss in _train(run, 2))


def test_channels_last_and_compile_train(tmp_path, tiny_model) -> None:
    run = _prepared_run(tmp_path, tiny_model("sd15"), channels_last=True, torch_compile=True)
    assert run.models.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.isfinite(loss).all() for loss in _train(run, 3))
