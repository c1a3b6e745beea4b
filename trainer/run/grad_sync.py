"""Several processes: the LoRA gradients averaged over the ranks in a few collectives;
caches that each rank built a share of, merged (`merge_from_ranks`).

Each rank holds the same LoRA and computes gradients on its own batches; before the
optimizer steps, every rank must hold the mean. `average_gradients` does it the way DDP
does, without wrapping the model:

- one all_reduce of a presence mask first, so that all ranks agree which parameters take
  part: a parameter with a gradient on some rank gets a zero gradient on the others; one
  with no gradient on any rank keeps `grad = None`, so the optimizer (and AdamW's weight
  decay) leaves it alone, as it does in a single process;
- the gradients flattened into fp32 buckets of about 25 MB, each divided by the number of
  processes before it is summed (fp16 gradients summed first could overflow), one
  all_reduce per bucket (an SDXL LoRA has ~1.5k gradient tensors), copied back.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist

BUCKET_BYTES = 25 * 2**20  # DDP's default bucket size


def average_gradients(
    params: Iterable[torch.nn.Parameter], world: int, bucket_bytes: int = BUCKET_BYTES
) -> None:
    """Replace each trainable parameter's gradient with its mean over the `world` ranks.

    All ranks must call it with the same parameters in the same order. Infinite or NaN
    gradients (an fp16 step the grad scaler will skip) stay so on every rank."""
    taking = [p for p in params if p.requires_grad]  # a stopped text encoder: frozen on every rank
    if world <= 1 or not taking:
        return
    device = taking[0].device
    present = torch.tensor([p.grad is not None for p in taking], dtype=torch.float32, device=device)
    dist.all_reduce(present)
    synced = []
    for p, count in zip(taking, present.tolist(), strict=True):
        if count == 0:
            continue  # no rank has a gradient: stays None everywhere
        if p.grad is None:
            p.grad = torch.zeros_like(p)  # another rank has one: this rank adds zeros to the mean
        synced.append(p)
    for bucket in _buckets(synced, bucket_bytes):
        flat = torch.cat([p.grad.reshape(-1).to(torch.float32) for p in bucket])
        flat.div_(world)  # divided first, and in fp32: the sum cannot overflow
        dist.all_reduce(flat)
        offset = 0
        for p in bucket:
            n = p.grad.numel()
            p.grad.copy_(flat[offset : offset + n].view(p.grad.shape))
            offset += n


def _buckets(params: list[torch.nn.Parameter], bucket_bytes: int) -> list[list[torch.nn.Parameter]]:
    """Consecutive parameters of one device, about `bucket_bytes` of fp32 gradient each."""
    out: list[list[torch.nn.Parameter]] = []
    size = 0
    for p in params:
        nbytes = p.grad.numel() * 4
        if out and out[-1][0].device == p.device and size + nbytes <= bucket_bytes:
            out[-1].append(p)
            size += nbytes
        else:
            out.append([p])
            size = nbytes
    return out


def merge_from_ranks(part: dict, world: int) -> dict:
    """Every rank's `part` (CPU tensors: the latents a rank encoded) merged into one dict,
    on every rank. The parts must have disjoint keys."""
    parts: list[dict | None] = [None] * world
    dist.all_gather_object(parts, part)
    merged: dict = {}
    for got in parts:
        merged.update(got or {})
    return merged
