"""The memory estimate against torch.cuda.max_memory_allocated() of real steps (GPU only).

Full-size SD1.5 at 512 px and SDXL at 1024 px with gradient checkpointing, random weights
from the shipped configs (scripts/bench_models.py), bf16, LoRA rank 16 on the U-Net,
latents and text-encoder outputs cached: the trainer's Run is prepared with those models
and takes three steps; the estimate of the same settings must be within 10 % of the
steps' peak (the setup's peak, caches being built, within 15 %). With $OUT set, the
numbers are also written to $OUT/estimate_gpu_<case>.json for BENCHMARKS.md.
scripts/gpu_estimate_check.sh runs this on a lent GPU.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
import torch

from tests.trainer.test_train_e2e import make_toy_dataset

pytestmark = pytest.mark.gpu
CONFIGS = Path(__file__).resolve().parents[2] / "trainer" / "models" / "configs"
GIB = 2**30


@pytest.mark.parametrize(
    ("arch", "resolution", "over"),
    [("sd15", 512, {}), ("sdxl", 1024, {"gradient_checkpointing": True, "sdxl": True})],
    ids=["sd15-512", "sdxl-1024-checkpointing"],
)
def test_estimate_is_within_10_percent_of_real_cuda_steps(
    script, tmp_path: Path, arch: str, resolution: int, over: dict
):
    from trainer.config import config_from_dict
    from trainer.data.resolved import resolve_dataset
    from trainer.estimate.estimate import measured_step
    from trainer.plan.training_plan import plan_dataset
    from trainer.run.train import Run

    os.environ["LORA_GUI_ESTIMATES"] = str(tmp_path / "estimates")
    cfg, _ = config_from_dict(
        {
            "pretrained_model_name_or_path": str(CONFIGS / arch),  # the estimate reads these configs
            "train_data_dir": str(make_toy_dataset(tmp_path / "data", n=1, size=resolution)),
            "output_dir": str(tmp_path / "out"),
            "output_name": "gpu",
            "mixed_precision": "bf16",
            "optimizer": "AdamW",
            "network_dim": 16,
            "network_alpha": 16,
            "train_batch_size": 1,
            "max_resolution": f"{resolution},{resolution}",
            "cache_latents": True,
            "network_train_unet_only": True,
            "max_train_steps": 10,
            **over,
        }
    )
    models = script("bench_models").build_models(arch, device="cuda", dtype=torch.bfloat16, seed=0)
    prepared = resolve_dataset(cfg)
    run = Run(cfg, plan_dataset(prepared), prepared, lambda event: None, threading.Event())
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    run.prepare(models)  # the models are on the GPU already, as load_models + .to("cuda") leave them
    setup_real = torch.cuda.max_memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    generator = torch.Generator(device="cuda").manual_seed(0)
    run.network.train()
    for epoch in (1, 2, 3):
        for batch in run.loader.epoch(epoch):
            run.acc.backward(run.step_loss(batch, generator))
            run.optimizer_step()
    torch.cuda.synchronize()
    step_real = torch.cuda.max_memory_allocated()

    step, _ = measured_step(cfg, (resolution, resolution), use_cache=False)
    result = {
        "gpu": torch.cuda.get_device_name(0),
        "step_real_gib": step_real / GIB,
        "step_estimate_gib": step["step_peak"] / GIB,
        "setup_real_gib": setup_real / GIB,
        "setup_estimate_gib": step["setup_peak"] / GIB,
    }
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], f"estimate_gpu_{arch}.json").write_text(json.dumps(result, indent=2))
    assert abs(step["step_peak"] - step_real) / step_real < 0.10, result
    assert abs(step["setup_peak"] - setup_real) / setup_real < 0.15, result
