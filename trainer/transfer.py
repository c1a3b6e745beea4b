"""Host-to-GPU copies that do not make the host wait for the GPU.

A plain `.to("cuda")` of a CPU tensor is a blocking copy: PyTorch waits until the copy,
and so every kernel queued before it, has finished. Once per step that is enough to stop
the CPU from queueing step N+1's kernels while the GPU still runs step N, and at batch 1
queueing the kernels of a U-Net forward takes about as long as running them. From pinned
(page-locked) memory the copy is asynchronous and ordered on the stream like a kernel, so
the host goes on at once. PyTorch's pinned-memory pool keeps the buffer alive until the
copy has run, and reuses it afterwards, so this allocates nothing per step once warm.
"""

from __future__ import annotations

import torch


def to_device(
    tensor: torch.Tensor, device: torch.device | str, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """`tensor` on `device` (and in `dtype`), without a host wait when `device` is a GPU."""
    device = torch.device(device)
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device=device, dtype=dtype)
    return tensor.pin_memory().to(device=device, dtype=dtype, non_blocking=True)
