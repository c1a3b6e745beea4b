"""CUDA autocast on meta tensors: the dtypes a GPU step computes and keeps in memory.

The estimate's tensors are meta tensors (this PyTorch may have no CUDA, and autograd
cannot run on fake CUDA tensors without it), but under `torch.autocast("cuda")` a GPU
step stores very different activations than CPU autocast would: CUDA runs group_norm,
layer_norm, upsampling and softmax in float32, so the activations around every norm
are twice as large. `CudaAutocast` is a TorchFunctionMode that applies CUDA autocast's
own policy to every call: matmuls and convolutions in the low dtype (casts of fp32 leaf
weights cached per autocast region, as autocast does), the float32 ops in float32, the
"set dtype" reductions (softmax, sum, ...) with dtype=float32, the promote ops at the
widest input dtype. The op lists are read from the installed PyTorch's own
`ATen/autocast_mode.h` (the macros autocast is compiled from), so they follow the
PyTorch in use; the copy below is used only when the header is not installed.

A torch function mode sees Python-level torch functions once, not the ops they call, so
the few Python wrappers whose op has another name are listed in `_ALIASES`.

`checkpoint_under_modes` makes gradient checkpointing recompute under the same modes,
as torch.utils.checkpoint restores the autocast state of the forward.

Imports torch only.
"""

from __future__ import annotations

import contextlib
import functools
import re
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack
from torch.utils._pytree import tree_leaves, tree_map

# torch 2.13's lists, used only when ATen/autocast_mode.h is not installed
_FALLBACK = {
    "lower": "_convolution conv1d conv2d conv3d conv_tbc conv_transpose1d conv_transpose2d "
    "conv_transpose3d convolution prelu addmm addmv addr matmul einsum mm mv linalg_vecdot linear "
    "addbmm baddbmm bmm chain_matmul linalg_multi_dot _scaled_dot_product_flash_attention "
    "scaled_dot_product_attention",
    "fp32": "acos asin cosh erfinv exp expm1 log log10 log2 log1p reciprocal rsqrt sinh tan pow "
    "softplus layer_norm native_layer_norm rms_norm group_norm frobenius_norm nuclear_norm "
    "cosine_similarity poisson_nll_loss cosine_embedding_loss nll_loss nll_loss2d "
    "hinge_embedding_loss kl_div l1_loss smooth_l1_loss huber_loss mse_loss margin_ranking_loss "
    "multilabel_margin_loss soft_margin_loss triplet_margin_loss multi_margin_loss "
    "binary_cross_entropy_with_logits dist pdist cdist renorm logsumexp upsample_nearest1d "
    "_upsample_nearest_exact1d upsample_nearest2d _upsample_nearest_exact2d upsample_nearest3d "
    "_upsample_nearest_exact3d upsample_linear1d upsample_bilinear2d _upsample_bilinear2d_aa "
    "upsample_trilinear3d upsample_bicubic2d _upsample_bicubic2d_aa",
    "fp32_set_opt_dtype": "prod softmax log_softmax cumprod cumsum linalg_vector_norm linalg_matrix_norm sum",
    "promote": "addcdiv addcmul atan2 bilinear cross dot vdot grid_sampler index_put tensordot scatter_add",
}
_MACROS = {
    "lower": "AT_FORALL_LOWER_PRECISION_FP",
    "fp32": "AT_FORALL_FP32",
    "fp32_set_opt_dtype": "AT_FORALL_FP32_SET_OPT_DTYPE",
    "promote": "AT_FORALL_PROMOTE",
}
# Python-level wrappers whose op autocast sees under another name.
_ALIASES = {
    "__matmul__": "matmul",
    "__rmatmul__": "matmul",
    "__pow__": "pow",
    "__rpow__": "pow",
    "__ipow__": "pow",
    "norm": "frobenius_norm",  # norm: float32 (autocast's fp32_append_dtype)
    "interpolate": "upsample_nearest2d",  # every mode but "area" is an upsample_* op
}


@functools.cache
def cuda_policy() -> dict[str, str]:
    """op name -> "lower" / "fp32" / "fp32_set_opt_dtype" / "promote", from the header."""
    header = Path(torch.__file__).parent / "include" / "ATen" / "autocast_mode.h"
    text = header.read_text(encoding="utf-8") if header.is_file() else ""
    policy: dict[str, str] = {}
    for kind, macro in _MACROS.items():
        found = re.search(rf"#define {macro}\(_\)((?:[^\n]*\\\n)*[^\n]*)", text)
        names = re.findall(r"_\((\w+)", found.group(1)) if found else []
        for name in names or _FALLBACK[kind].split():
            policy.setdefault(name, kind)
    return policy


class CudaAutocast(TorchFunctionMode):
    """`torch.autocast("cuda", dtype)` for tensors that are not on CUDA (see the module docstring)."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype
        self.policy = cuda_policy()
        self.active = False
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __enter__(self):
        self.active = True
        return super().__enter__()

    def __exit__(self, *exc):
        self.active = False
        self._cache.clear()  # autocast drops its cast cache when the region ends
        return super().__exit__(*exc)

    def _cast(self, t: object, dtype: torch.dtype) -> object:
        if not (isinstance(t, torch.Tensor) and t.is_floating_point()) or t.dtype in (dtype, torch.float64):
            return t
        cacheable = dtype == self.dtype and t.dtype == torch.float32 and t.requires_grad and t.is_leaf
        if not cacheable:
            return t.to(dtype)
        hit = self._cache.get(id(t))
        if hit is None or hit[0] is not t:
            hit = self._cache[id(t)] = (t, t.to(dtype))
        return hit[1]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        kind = self.policy.get(_ALIASES.get(name, name))
        if name == "interpolate" and kwargs.get("mode") == "area":
            kind = None  # adaptive_avg_pool2d, which autocast leaves alone
        if kind in ("lower", "fp32"):
            dtype = self.dtype if kind == "lower" else torch.float32
            args, kwargs = tree_map(lambda t: self._cast(t, dtype), (args, kwargs))
        elif kind == "fp32_set_opt_dtype":
            if _low(args[0] if args else None) and kwargs.get("dtype") is None and not _has_dtype_arg(args):
                kwargs = {**kwargs, "dtype": torch.float32}
        elif kind == "promote":
            widest = self.dtype
            for t in tree_leaves(args):
                if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64:
                    widest = torch.promote_types(widest, t.dtype)
            args, kwargs = tree_map(lambda t: self._cast(t, widest), (args, kwargs))
        return func(*args, **kwargs)


def _low(t: object) -> bool:
    return isinstance(t, torch.Tensor) and t.dtype in (torch.float16, torch.bfloat16)


def _has_dtype_arg(args: tuple) -> bool:
    return any(isinstance(a, torch.dtype) for a in args[1:])


def checkpoint_under_modes(module: torch.nn.Module) -> int:
    """Wrap every `_gradient_checkpointing_func` under `module` (diffusers and transformers
    keep one per block) so that the recomputation in backward runs under the torch function
    modes its forward ran under (this autocast, the estimate's device); torch.utils.checkpoint
    restores real autocast's state the same way, but not function modes. Returns how many."""
    wrapped = 0
    for sub in module.modules():
        original = getattr(sub, "_gradient_checkpointing_func", None)
        if original is None or getattr(original, "_under_modes", False):
            continue

        def run(fn, *args, _original=original, **kwargs):
            forward_modes = _get_current_function_mode_stack()

            def again(*a, **k):
                now = _get_current_function_mode_stack()
                with contextlib.ExitStack() as stack:
                    for mode in forward_modes:
                        if not any(m is mode for m in now):
                            stack.enter_context(mode)
                    return fn(*a, **k)

            return _original(again, *args, **kwargs)

        run._under_modes = True
        sub._gradient_checkpointing_func = run
        wrapped += 1
    return wrapped
