"""Reuse the output shapes of an operation already seen with the same inputs (meta tensors).

On the meta device many operations find their output's shape, strides and dtype through
PyTorch's Python reference kernels (torch._refs / torch._prims), about a millisecond each;
a U-Net repeats the same few hundred shapes thousands of times. `MetaOutputs.call` keeps,
per (operation, input shapes / strides / dtypes, other arguments), the metadata of the
outputs and makes fresh meta tensors of it the next time, as FakeTensorMode's own cache
does. Only operations whose outputs are all new tensors are kept (no views, no in-place
or out= writes: their outputs must be the inputs' storage), and only when the made tensor
has the storage size the kernel gave.

Imports torch only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._pytree import tree_flatten

_SCALARS = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.memory_format, torch.layout)
_Meta = tuple[tuple[int, ...], tuple[int, ...], torch.dtype]


def _fresh_outputs(func: torch._ops.OpOverload) -> bool:
    """True when every output of `func` is a new tensor and it writes to no input."""
    schema = func._schema
    if any(a.alias_info is not None for a in schema.arguments):
        return False
    returns = schema.returns
    return bool(returns) and all(r.alias_info is None and str(r.type) == "Tensor" for r in returns)


class MetaOutputs:
    """The cache (see the module docstring)."""

    def __init__(self) -> None:
        self._fresh: dict[Any, bool] = {}
        self._outputs: dict[tuple, tuple[_Meta, ...] | None] = {}
        self.hits = 0

    def _key(self, func, args, kwargs) -> tuple | None:
        key: list[Any] = [func, len(args), tuple(kwargs)]
        for value in (*args, *kwargs.values()):
            if isinstance(value, (list, tuple)):
                key.append(len(value))
                if not all(self._add(key, item) for item in value):
                    return None
            elif not self._add(key, value):
                return None
        return tuple(key)

    @staticmethod
    def _add(key: list, value: Any) -> bool:
        """Append what identifies `value` for the cache; False for what cannot be keyed."""
        if isinstance(value, torch.Tensor):
            if not value.is_meta:
                return False
            key.append((tuple(value.shape), value.stride(), value.dtype, value.storage_offset()))
        elif isinstance(value, _SCALARS):
            key.append((type(value), value))  # 1 and 1.0 and True give different dtypes
        else:
            return False
        return True

    def call(self, func, args, kwargs):
        """func(*args, **kwargs), or fresh meta tensors like the ones it gave before."""
        fresh = self._fresh.get(func)
        if fresh is None:
            fresh = self._fresh[func] = _fresh_outputs(func)
        key = self._key(func, args, kwargs) if fresh else None
        if key is None:
            return func(*args, **kwargs)
        metas = self._outputs.get(key, ())
        if metas:
            self.hits += 1
            made = tuple(torch.empty_strided(s, st, dtype=d, device="meta") for s, st, d in metas)
            return made[0] if len(made) == 1 else made
        out = func(*args, **kwargs)
        if metas is None:
            return out
        outs = out if isinstance(out, tuple) else (out,)
        if not all(isinstance(o, torch.Tensor) and o.is_meta for o in outs):  # None, or a host tensor
            self._outputs[key] = None
            return out
        metas = tuple((tuple(t.shape), t.stride(), t.dtype) for t in outs)
        same = all(
            o.storage_offset() == 0
            and torch.empty_strided(s, st, dtype=d, device="meta").untyped_storage().nbytes()
            == o.untyped_storage().nbytes()
            for o, (s, st, d) in zip(outs, metas, strict=True)
        )
        storages = {o.untyped_storage()._cdata for o in outs}
        inputs = {
            t.untyped_storage()._cdata for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)
        }
        # an output that is an input's storage (_unsafe_view says no alias but is one) is not new
        fresh_storages = len(storages) == len(outs) and not storages & inputs
        self._outputs[key] = metas if same and fresh_storages else None
        if not fresh_storages:
            self._fresh[func] = False
        return out
