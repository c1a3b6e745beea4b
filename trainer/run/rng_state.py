"""The random generators of a run, captured and put back (training states, resume).

`capture_rng` / `restore_rng`: Python's, NumPy's, torch's (CPU and CUDA) and the loop's
own noise generator. With several processes each has its own loop generator:
`gather_rng` collects every process's at a save (all processes call it together), so a
resumed run continues each process's noise where it stopped.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def capture_rng(generator: torch.Generator) -> dict:
    """Every random generator the loop draws from, as tensors and plain values."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_name, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": generator.get_state(),
        "generator_device": generator.device.type,
    }


def restore_rng(rng: dict, generator: torch.Generator) -> bool:
    """Put every generator back as `capture_rng` found it. Returns False when the loop's
    generator was saved on another kind of device (GPU vs CPU): it then keeps its seed."""
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])
    if rng.get("generator_device", generator.device.type) != generator.device.type:
        return False
    generator.set_state(rng["generator"])
    return True


def gather_rng(generator: torch.Generator, world: int) -> list[dict] | None:
    """Every process's `capture_rng`, in rank order (call on all processes at once), or
    None for a single process."""
    if world <= 1:
        return None
    gathered: list = [None] * world
    torch.distributed.all_gather_object(gathered, capture_rng(generator))
    return gathered
