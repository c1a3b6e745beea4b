"""Several processes: the gradients are averaged in a few bucketed all_reduce calls, in
fp32, and a parameter no rank has a gradient for keeps `grad = None` (two CPU processes, gloo)."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
N_PARAMS = 40


def _params() -> list[torch.nn.Parameter]:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(3, 5)) for _ in range(N_PARAMS)]
    params.append(torch.nn.Parameter(torch.randn(4, dtype=torch.float16)))  # full_fp16 LoRA weights
    params.append(torch.nn.Parameter(torch.randn(2)))  # grad only on rank 0
    params.append(torch.nn.Parameter(torch.randn(2)))  # grad on no rank
    frozen = torch.nn.Parameter(torch.randn(2))
    frozen.requires_grad_(False)
    params.append(frozen)
    return params


def _grads(rank: int) -> list[torch.Tensor | None]:
    """The gradients rank `rank` computed (None: none)."""
    g = torch.Generator().manual_seed(100 + rank)
    grads: list[torch.Tensor | None] = [torch.randn(3, 5, generator=g) for _ in range(N_PARAMS)]
    grads.append(torch.full((4,), 40000.0, dtype=torch.float16))  # the fp16 sum (80000) overflows
    grads.append(torch.ones(2) * 6 if rank == 0 else None)
    grads.append(None)
    grads.append(None)
    return grads


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    from trainer.run.train import Run

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        params = _params()
        for p, grad in zip(params, _grads(rank), strict=True):
            p.grad = grad
        calls = []
        original = dist.all_reduce

        def counting(tensor, *args, **kwargs):
            calls.append(tensor.numel())
            return original(tensor, *args, **kwargs)

        dist.all_reduce = counting
        try:
            fake_run = SimpleNamespace(params=params, acc=SimpleNamespace(num_processes=WORLD))
            Run._sync_gradients(fake_run)
        finally:
            dist.all_reduce = original
        out = {
            "calls": len(calls),
            "grads": [None if p.grad is None else p.grad.float().tolist() for p in params],
            "dtypes": [None if p.grad is None else str(p.grad.dtype) for p in params],
        }
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(out, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_average_gradients_in_a_few_bucketed_all_reduces(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    per_rank = [_grads(r) for r in range(WORLD)]
    for result in results:
        # the presence mask and one bucket, not one call per gradient tensor
        assert result["calls"] <= 3, result["calls"]
        assert result["grads"] == results[0]["grads"]  # every rank steps the same LoRA
        for i in range(N_PARAMS):
            mean = (per_rank[0][i] + per_rank[1][i]) / WORLD
            assert torch.allclose(torch.tensor(result["grads"][i]), mean, atol=1e-6)
        # fp16 gradients divided before the sum: 40000 on each rank averages to 40000, not inf
        assert result["grads"][N_PARAMS] == [40000.0] * 4
        assert result["dtypes"][N_PARAMS] == "torch.float16"
        # a gradient on one rank only: the others add zeros to the mean
        assert result["grads"][N_PARAMS + 1] == [3.0, 3.0]
        # no rank has a gradient: None everywhere (weight decay leaves it alone), frozen too
        assert result["grads"][N_PARAMS + 2] is None
        assert result["grads"][N_PARAMS + 3] is None


def test_one_process_leaves_the_gradients_alone():
    from trainer.run.grad_sync import average_gradients

    params = _params()
    for p, grad in zip(params, _grads(0), strict=True):
        p.grad = grad
    before = [None if p.grad is None else p.grad.clone() for p in params]
    average_gradients(params, world=1)
    for p, b in zip(params, before, strict=True):
        assert (p.grad is None and b is None) or torch.equal(p.grad, b)


def test_buckets_split_by_size():
    from trainer.run.grad_sync import _buckets

    params = [torch.nn.Parameter(torch.zeros(10)) for _ in range(5)]
    for p in params:
        p.grad = torch.zeros(10)
    assert [len(b) for b in _buckets(params, bucket_bytes=80)] == [2, 2, 1]
    assert [len(b) for b in _buckets(params, bucket_bytes=10**6)] == [5]
