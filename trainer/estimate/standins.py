"""Stand-ins for what cannot run on meta tensors without CUDA: the GPU device, its attention
kernels, and bitsandbytes.

- `CudaOnMeta`: a TorchFunctionMode under which `device="cuda"` (and, while models are
  built, no device, except for tensors made from data) means the meta device
  (shapes and dtypes, no memory, no arithmetic) and pinning is a no-op, so the run's own
  code, which moves things to `torch.device("cuda")`, runs unchanged without CUDA; and
  `scaled_dot_product_attention` takes the fused kernel CUDA would (flash attention for
  fp16/bf16 without a mask and head size <= 256, else memory-efficient attention), which
  keep only the output and the log-sum-exp for backward. (On the meta device PyTorch would
  pick the math kernel, which keeps every attention matrix.)
- `Bnb8bitStandIn`: the optimizer state that bitsandbytes' 8-bit optimizers keep
  (bitsandbytes.optim.optimizer.Optimizer{1,2}State.init_state): per parameter of at least
  `min_8bit_size` (4096) elements one uint8 buffer per moment plus one float32 absmax per
  256-element block; smaller parameters keep float32 moments. Its step updates in place,
  as bitsandbytes' fused kernels do (no temporaries). Their kernels need CUDA, and the
  estimate only needs what they keep.

Imports torch only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

BNB_BLOCK = 256  # bitsandbytes' blockwise quantisation block for optimizer states
BNB_MIN_8BIT_SIZE = 4096
# bitsandbytes class -> (moments, 8-bit); AdEMAMix keeps two first moments and one second.
BNB_LAYOUTS = {
    "AdamW8bit": (2, True),
    "PagedAdamW8bit": (2, True),
    "PagedAdamW32bit": (2, False),
    "Lion8bit": (1, True),
    "PagedLion8bit": (1, True),
    "SGD8bit": (1, True),
    "AdEMAMix8bit": (3, True),
    "PagedAdEMAMix8bit": (3, True),
}


def _is_cuda(device: object) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    return isinstance(device, str) and device.startswith("cuda")


# Tensors made from Python data stay real CPU tensors: code reads their values back
# (LyCORIS sizes a conv factor by torch.tensor(kernel).prod().item()), and a GPU run moves
# any that take part in the step to the device first.
_FROM_DATA = {"tensor", "as_tensor", "asarray", "scalar_tensor", "from_numpy", "frombuffer"}


class CudaOnMeta(TorchFunctionMode):
    """`device="cuda"` -> `device` (the meta device), `pin_memory()` / `.cuda()` -> the tensor,
    SDPA -> CUDA's fused kernels (see the module docstring).

    `building` (a context): tensors made without a device go to the meta device too, as
    when models and networks are built; in a training step they stay on the CPU (a host
    random draw such as LoRA's module dropout). `on_host(tensor)` is told of every copy a
    meta tensor makes to the CPU (host memory: LyCORIS keeps the original weights there)."""

    def __init__(self, device: str = "meta", on_host: Callable[[torch.Tensor], None] | None = None) -> None:
        super().__init__()
        self.device = torch.device(device)
        self.default_device: torch.device | None = None
        self.on_host = on_host

    @contextlib.contextmanager
    def building(self):
        self.default_device = self.device
        try:
            yield self
        finally:
            self.default_device = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if self.default_device is not None and kwargs.get("device") is None and name not in _FROM_DATA:
            if func in _device_constructors():
                kwargs["device"] = self.default_device
        if name in ("pin_memory", "cuda"):
            return args[0]
        if name == "scaled_dot_product_attention":
            return _cuda_sdpa(func, args, kwargs)
        if name == "type" and len(args) == 2 and isinstance(args[1], str) and args[0].is_meta:
            return args[0].to(_TYPE_NAMES.get(args[1].rsplit(".", 1)[-1], args[0].dtype))  # "torch.meta.X"
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = self.device
        if name in ("cpu", "to") and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            if name == "cpu" or _is_cpu(kwargs.get("device")) or any(_is_cpu(a) for a in args[1:]):
                return self._host_copy(func, args, kwargs)
        if name == "to":
            args = tuple(self.device if _is_cuda(a) else a for a in args)
        return func(*args, **kwargs)

    def _host_copy(self, func, args: tuple, kwargs: dict) -> torch.Tensor:
        """A meta tensor's copy "on the CPU": a meta copy the tracker is told not to count."""
        rest = tuple(self.device if _is_cpu(a) else a for a in args[1:])
        if kwargs.get("device") is not None:
            kwargs["device"] = self.device
        moved = args[0].clone() if func.__name__ == "cpu" else func(args[0].clone(), *rest, **kwargs)
        if self.on_host is not None:
            self.on_host(moved)
        return moved


def _is_cpu(device: object) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cpu"
    return device == "cpu"


_TYPE_NAMES = {
    "FloatTensor": torch.float32,
    "DoubleTensor": torch.float64,
    "HalfTensor": torch.float16,
    "BFloat16Tensor": torch.bfloat16,
    "LongTensor": torch.int64,
    "IntTensor": torch.int32,
    "ByteTensor": torch.uint8,
    "BoolTensor": torch.bool,
}


_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


def _cuda_sdpa(func, args: tuple, kwargs: dict):
    """F.scaled_dot_product_attention as CUDA runs it (flash or memory-efficient kernel)."""
    a = dict(zip(_SDPA_ARGS, args, strict=False)) | kwargs  # positional ones, then keywords
    q, k, v, mask = a["query"], a["key"], a["value"], a.get("attn_mask")
    dropout, causal, scale = a.get("dropout_p", 0.0), a.get("is_causal", False), a.get("scale")
    head = q.shape[-1]
    if a.get("enable_gqa") or q.dim() != 4 or v.shape[-1] != head or not q.is_meta:
        return func(*args, **kwargs)
    aten = torch.ops.aten
    if q.dtype in (torch.float16, torch.bfloat16) and mask is None and head % 8 == 0 and head <= 256:
        return aten._scaled_dot_product_flash_attention(q, k, v, dropout, causal, False, scale=scale)[0]
    if mask is not None and mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device)  # -inf where False: same shape
    grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    return aten._scaled_dot_product_efficient_attention(q, k, v, mask, grad, dropout, causal, scale=scale)[0]


class Bnb8bitStandIn(torch.optim.Optimizer):
    """The state layout of a bitsandbytes optimizer (see the module docstring)."""

    def __init__(self, params, lr: float = 1e-3, *, moments: int = 2, eight_bit: bool = True, **_options):
        super().__init__(params, {"lr": lr if lr is not None else 1e-3})
        self.moments, self.eight_bit = moments, eight_bit

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    self._init_state(p, state)
                p.add_(p.grad, alpha=-group["lr"])
        return None

    def _init_state(self, p: torch.Tensor, state: dict) -> None:
        state["step"] = 0
        small = p.numel() < BNB_MIN_8BIT_SIZE
        dtype = torch.float32 if small or not self.eight_bit else torch.uint8
        for i in range(1, self.moments + 1):
            state[f"state{i}"] = torch.zeros_like(p, dtype=dtype)
            if dtype == torch.uint8:
                blocks = -(-p.numel() // BNB_BLOCK)
                state[f"absmax{i}"] = torch.zeros(blocks, dtype=torch.float32, device=p.device)


def bnb_stand_in(cls_name: str):
    """What `trainer.optim.optimizers._bnb(cls_name)` gives while estimating: a stand-in class."""
    moments, eight_bit = BNB_LAYOUTS.get(cls_name, (2, True))

    def make(params, lr: float = 1e-3, **options):
        return Bnb8bitStandIn(params, lr, moments=moments, eight_bit=eight_bit, **options)

    return make
