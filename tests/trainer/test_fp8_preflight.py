"""fp8_base on this machine: torch_compile refused on GPUs without fp8 kernels (before
compute capability 8.9), a warning without gradient checkpointing, and out-of-memory
advice that suggests fp8_base only where it can run (GPU faked by monkeypatching)."""

from __future__ import annotations

import pytest
import torch

from trainer.config import TrainingConfig
from trainer.run.guards import out_of_memory_message
from trainer.run.preflight import run_preflight
from trainer.run.preflight_options import option_preflight


def _gpu(monkeypatch, capability: tuple[int, int]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)


@pytest.mark.parametrize(
    ("capability", "refused"), [((8, 6), True), ((8, 0), True), ((8, 9), False), ((9, 0), False)]
)
def test_fp8_base_with_torch_compile_needs_capability_8_9(monkeypatch, capability, refused):
    _gpu(monkeypatch, capability)
    cfg = TrainingConfig(fp8_base=True, mixed_precision="bf16", torch_compile=True)
    problems = [p for p in option_preflight(cfg, cuda=True) if p.key == "torch_compile"]
    assert bool(problems) == refused
    if refused:
        assert f"{capability[0]}.{capability[1]}" in problems[0].message
    # without torch_compile fp8 runs on any of them (the weights are upcast per layer)
    plain = TrainingConfig(fp8_base=True, mixed_precision="bf16")
    assert not [p for p in option_preflight(plain, cuda=True) if p.key == "torch_compile"]


def test_fp8_base_without_gradient_checkpointing_warns(tmp_path):
    def warnings(**over):
        return run_preflight(TrainingConfig(mixed_precision="bf16", output_dir=str(tmp_path), **over))[1]

    said = [w for w in warnings(fp8_base=True) if "gradient_checkpointing" in w]
    assert said and "fp8_base" in said[0]
    assert not [w for w in warnings(fp8_base=True, gradient_checkpointing=True) if "fp8_base" in w]
    assert not [w for w in warnings() if "fp8_base" in w]


def test_out_of_memory_advice_leaves_fp8_base_out_where_compiling_it_fails(monkeypatch):
    def hint(**over) -> str:
        cfg = TrainingConfig(mixed_precision="bf16", **over)
        return out_of_memory_message(cfg, torch.cuda.OutOfMemoryError("CUDA out of memory"))[1]

    _gpu(monkeypatch, (8, 6))
    assert "fp8_base" not in hint(torch_compile=True)
    assert "fp8_base" in hint()  # uncompiled it works on an RTX 30xx
    _gpu(monkeypatch, (8, 9))
    assert "fp8_base" in hint(torch_compile=True)
