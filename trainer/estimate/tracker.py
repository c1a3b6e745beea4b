"""Live tensor bytes of a step on meta (or real) tensors, counted as the CUDA allocator would.

`MemoryTracker` is a TorchDispatchMode: every tensor an operation returns has its storage
registered once (views share it), with a weakref finalizer that takes its bytes off when
PyTorch frees it; so `current` is the bytes alive now and `peak` the most ever alive, as
`torch.cuda.max_memory_allocated` reports them (each block rounded up to 512 bytes, the
caching allocator's smallest unit). Nothing here reads tensor values, so it runs on meta
tensors (no memory, no compute) and on real ones alike; the tests measure a real CPU step
with the same tracker.

Tensors made before the tracker starts (the model's weights) are counted with `adopt`;
`release` takes tensors off as if they had left the GPU (a text encoder moved to the CPU
after its outputs were cached). At each new peak (0.5 % above the last one) the set of
live storages is kept, so the peak can be split into weights, gradients, optimizer state
and activations afterwards (`split`).

On meta tensors a value read (`.item()`, `if tensor:`) has no value to give: the tracker
answers 1 (1.0, True), which only steers data-dependent branches that do not change any
shape in a training step (an optimizer's safeguard, the fp16 scaler's inf check).

Imports torch (and trainer.estimate.meta_cache, which makes meta tensors faster to run).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from trainer.estimate.meta_cache import MetaOutputs

ALLOCATOR_ROUND = 512  # bytes: the CUDA caching allocator rounds every block up to this
_SNAPSHOT_STEP = 1.005  # keep the live set again once the peak grew by 0.5 %


def rounded(nbytes: int) -> int:
    """Bytes of a block the CUDA caching allocator gives for `nbytes` (0 stays 0)."""
    return -(-nbytes // ALLOCATOR_ROUND) * ALLOCATOR_ROUND


@dataclass
class PeakSplit:
    """Bytes alive at the peak, by what they hold."""

    weights: int
    gradients: int
    optimizer_state: int
    activations: int  # activations saved for backward, temporaries, inputs, caches


class MemoryTracker(TorchDispatchMode):
    """Counts the bytes of live tensor storages; see the module docstring."""

    def __init__(self, reuse_meta_shapes: bool = True, device_type: str | None = None) -> None:
        super().__init__()
        self.device_type = device_type  # count only tensors on this device ("meta"), or all
        self.meta_outputs = MetaOutputs() if reuse_meta_shapes else None
        self._serials = itertools.count()
        self.live: dict[int, tuple[int, int]] = {}  # storage id -> (serial, bytes)
        self._released: set[int] = set()  # storages that "left the GPU"
        self.current = 0
        self.peak = 0
        self.peak_live: frozenset[int] = frozenset()  # serials alive at the last kept peak
        self.peak_label = ""
        self.label = ""  # what the run is doing now ("forward", "backward", ...), for the report
        self._kept_at = 0
        self.ops = 0  # operations dispatched
        self.allocated_total = 0  # bytes of every storage made (each written at least once)

    # ---- counting ------------------------------------------------------------------------
    def _track(self, tensor: torch.Tensor) -> None:
        if self.device_type is not None and tensor.device.type != self.device_type:
            return  # a host tensor (token ids, sizes) of a run whose GPU is the meta device
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse / nested: none in a training step
            return
        key = storage._cdata
        if key in self.live or key in self._released:
            return
        nbytes = rounded(storage.nbytes())
        self.live[key] = (next(self._serials), nbytes)
        weakref.finalize(storage, self._free, key)
        self.current += nbytes
        self.allocated_total += nbytes
        if self.current > self.peak:
            self.peak = self.current
            self.peak_label = self.label
            if self.current > self._kept_at * _SNAPSHOT_STEP:
                self.peak_live = frozenset(serial for serial, _ in self.live.values())
                self._kept_at = self.current

    def _free(self, key: int) -> None:
        self._released.discard(key)
        entry = self.live.pop(key, None)
        if entry is not None:
            self.current -= entry[1]

    def adopt(self, tensors: Iterable[torch.Tensor]) -> None:
        """Count tensors made before the tracker started (weights already on the GPU)."""
        for t in tensors:
            self._track(t)

    def release(self, tensors: Iterable[torch.Tensor]) -> None:
        """Stop counting tensors that left the GPU; their views are not counted either."""
        for t in tensors:
            key = t.untyped_storage()._cdata
            entry = self.live.pop(key, None)
            if entry is not None:
                self.current -= entry[1]
            self._released.add(key)

    def reset_peak(self) -> None:
        """Start a new peak from what is alive now (torch.cuda.reset_peak_memory_stats)."""
        self.peak = self._kept_at = self.current
        self.peak_live = frozenset(serial for serial, _ in self.live.values())
        self.peak_label = self.label

    def bytes_of(self, tensors: Iterable[torch.Tensor]) -> int:
        """Counted bytes of these tensors' storages (each storage once)."""
        keys = {t.untyped_storage()._cdata for t in tensors}
        return sum(self.live[k][1] for k in keys if k in self.live)

    def serials_of(self, tensors: Iterable[torch.Tensor]) -> dict[int, int]:
        """serial -> bytes of these tensors' live storages."""
        out = {}
        for t in tensors:
            entry = self.live.get(t.untyped_storage()._cdata)
            if entry is not None:
                out[entry[0]] = entry[1]
        return out

    def split(
        self, weights: dict[int, int], gradients: dict[int, int], optimizer_state: dict[int, int]
    ) -> PeakSplit:
        """The peak split by the serial -> bytes maps of each kind (the rest: activations)."""

        def at_peak(kind: dict[int, int]) -> int:
            return sum(n for serial, n in kind.items() if serial in self.peak_live)

        w, g, s = at_peak(weights), at_peak(gradients), at_peak(optimizer_state)
        return PeakSplit(w, g, s, max(0, self.peak - w - g - s))

    # ---- the dispatch hook ----------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        if func is torch.ops.aten._local_scalar_dense.default and _no_values(args[0]):
            return _stand_in_value(args[0])
        kwargs = kwargs or {}
        out = self.meta_outputs.call(func, args, kwargs) if self.meta_outputs else func(*args, **kwargs)
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out


def _no_values(tensor: torch.Tensor) -> bool:
    return tensor.is_meta or isinstance(tensor, FakeTensor)


def _stand_in_value(tensor: torch.Tensor) -> bool | int | float:
    """What `.item()` answers on a tensor without values (see the module docstring)."""
    if tensor.dtype == torch.bool:
        return True
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex:
        return 1.0
    return 1
