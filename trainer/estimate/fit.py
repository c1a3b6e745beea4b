"""What the card must hold beyond the live tensors, and the verdict against its size.

- `ALLOCATOR_OVERHEAD`: PyTorch's caching allocator holds more than the live tensors
  (blocks split and freed at other sizes between buckets): +10 % of the peak;
- `CUDA_CONTEXT_GIB`: the CUDA context with cuBLAS / cuDNN workspaces, which no
  `torch.cuda.max_memory_allocated` counts but the card must hold: 0.6 GiB.
Both are rules of thumb (typical of PyTorch 2.x on CUDA 12), not measurements.

Against a VRAM size the verdict is "fits" (needs at most `FITS_SHARE`, 92 %, of it),
"tight" (up to all of it: close other programs using the GPU; a desktop takes 0.3-1 GiB)
or "does not fit".

Pure Python (no torch).
"""

from __future__ import annotations

GIB = 2**30
ALLOCATOR_OVERHEAD = 0.10
CUDA_CONTEXT_GIB = 0.6
FITS_SHARE = 0.92


def needed_bytes(allocated_peak: float) -> float:
    """What the card must have for a run whose live tensors peak at `allocated_peak` bytes."""
    return allocated_peak * (1 + ALLOCATOR_OVERHEAD) + CUDA_CONTEXT_GIB * GIB


def verdict(needed_gib: float, vram_gib: float) -> str:
    """ "fits", "tight" or "does not fit" (see the module docstring)."""
    if needed_gib <= vram_gib * FITS_SHARE:
        return "fits"
    return "tight" if needed_gib <= vram_gib else "does not fit"
