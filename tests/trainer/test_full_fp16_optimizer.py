"""full_fp16: fp16 LoRA weights with an optimizer doing its math in Python (AdamW without
`fused`, Prodigy, DAdapt, ...): small gradients must not turn the weights into -inf."""

from __future__ import annotations

import warnings

import pytest
import torch

from trainer.optim.optimizers import make_optimizer, make_scheduler


def _steps(optimizer, params, grad: float, n: int = 3) -> None:
    for _ in range(n):
        for p in params:
            p.grad = torch.full_like(p, grad)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


@pytest.mark.parametrize("args", ["fused=False", "foreach=True", "foreach=False"])
def test_adamw_keeps_fp16_weights_finite_on_small_gradients(args):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(16, dtype=torch.float16) * 0.01) for _ in range(3)]
    before = [p.detach().clone() for p in params]
    optimizer = make_optimizer("AdamW", [{"params": params}], 1e-4, args, torch.device("cpu"), full_fp16=True)
    _steps(optimizer, params, 1e-5)  # fp16: the squared gradient and eps round to 0 -> inf
    for p, b in zip(params, before, strict=True):
        assert p.dtype == torch.float16  # the weights stay fp16 between steps
        assert torch.isfinite(p).all()
        assert not torch.equal(p, b)  # and they learned
    state = optimizer.state[params[0]]
    assert state["exp_avg_sq"].dtype == torch.float32  # the state is fp32: no underflow


def test_without_it_the_fp16_math_overflows():
    """The defect itself, so the test above keeps meaning something."""
    p = torch.nn.Parameter(torch.randn(16, dtype=torch.float16) * 0.01)
    optimizer = make_optimizer("AdamW", [{"params": [p]}], 1e-4, "fused=False", torch.device("cpu"))
    _steps(optimizer, [p], 1e-5)
    assert not torch.isfinite(p).all()


def test_a_resumed_fp16_state_and_the_lr_schedule_work():
    params = [torch.nn.Parameter(torch.randn(8, dtype=torch.float16) * 0.01)]
    optimizer = make_optimizer("AdamW", [{"params": params}], 1e-4, "fused=False", torch.device("cpu"), True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "lr_scheduler.step() before optimizer.step()"
        scheduler = make_scheduler(optimizer, name="cosine", total_steps=10, warmup_steps=0, initial_lr=1e-4)
        _steps(optimizer, params, 1e-5, n=1)
        scheduler.step()
    saved = optimizer.state_dict()
    again = make_optimizer("AdamW", [{"params": params}], 1e-4, "fused=False", torch.device("cpu"), True)
    again.load_state_dict(saved)  # PyTorch casts the state to the fp16 weights' dtype
    _steps(again, params, 1e-5)
    assert torch.isfinite(params[0]).all()
    assert again.state[params[0]]["exp_avg"].dtype == torch.float32


def test_full_fp16_with_a_schedule_free_optimizer_is_refused():
    """Schedule-free optimizers swap weights outside `step` (left in fp16): refused."""
    from trainer.config import ConfigError, config_from_dict

    base = {"pretrained_model_name_or_path": "m", "train_data_dir": "d", "output_dir": "o"}
    base.update(mixed_precision="fp16", full_fp16=True)
    with pytest.raises(ConfigError, match="full_fp16: AdamWScheduleFree"):
        config_from_dict({**base, "optimizer": "AdamWScheduleFree"})
    config_from_dict({**base, "optimizer": "AdamW"})
