"""The speed work that runs on a CPU: thread wait policy, fused AdamW, copies, opt-in options."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.helpers import ROOT
from trainer.config import TrainingConfig
from trainer.optim.optimizers import make_optimizer
from trainer.run.cpu_threads import apply_cpu_thread_defaults, wait_policy_for
from trainer.run.speed import apply_speed_options, unet_blocks
from trainer.transfer import to_device


def test_idle_threads_sleep_only_when_the_run_asks_for_more_threads_than_cores() -> None:
    assert wait_policy_for(threads=2, processes=1, cores=2) is None  # the runtime's default
    assert wait_policy_for(threads=4, processes=1, cores=2) == "PASSIVE"
    assert wait_policy_for(threads=2, processes=2, cores=2) == "PASSIVE"  # two processes
    assert wait_policy_for(threads=8, processes=2, cores=16) is None
    assert wait_policy_for(threads=None, processes=1, cores=2) is None  # torch's: one per core


def test_the_decision_does_not_depend_on_the_load_average(monkeypatch) -> None:
    for load in (0.0, 99.0):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        env = {"OMP_NUM_THREADS": "2"}
        assert apply_cpu_thread_defaults(env, cores=2) is None and env == {"OMP_NUM_THREADS": "2"}


def test_a_launchers_environment_and_the_preset_both_count() -> None:
    env = {"OMP_NUM_THREADS": "2", "LOCAL_WORLD_SIZE": "2"}  # accelerate launch, 2 processes
    assert apply_cpu_thread_defaults(env, cores=2) == "PASSIVE" and env["OMP_WAIT_POLICY"] == "PASSIVE"
    env = {}
    assert apply_cpu_thread_defaults(env, threads=3, processes=1, cores=2) == "PASSIVE"
    # ours, not the user's: the preset read later may take it back
    assert apply_cpu_thread_defaults(env, threads=2, processes=1, cores=2) is None
    assert "OMP_WAIT_POLICY" not in env


def test_a_wait_policy_the_user_set_is_kept() -> None:
    for value in ("ACTIVE", "PASSIVE"):
        env = {"OMP_WAIT_POLICY": value}
        assert apply_cpu_thread_defaults(env, threads=1, processes=1, cores=2) is None
        assert apply_cpu_thread_defaults(env, threads=8, processes=1, cores=2) is None
        assert env == {"OMP_WAIT_POLICY": value}


def test_the_policy_is_set_when_the_package_loads_before_torch() -> None:
    # libgomp reads it once, when torch loads: `import trainer` must come first and set it.
    code = "import os, sys, trainer; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update({"OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": str(2 * (os.cpu_count() or 1))})
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["PASSIVE", "False"]


def _params() -> list[dict]:
    return [{"params": [torch.nn.Parameter(torch.zeros(4, 4))], "lr": 1e-3}]


def test_adamw_is_fused_on_a_cpu_unless_foreach_is_asked_for() -> None:
    fused = make_optimizer("AdamW", _params(), 1e-3, "", torch.device("cpu"))
    assert fused.defaults["fused"] is True
    loop = make_optimizer("AdamW", _params(), 1e-3, "foreach=True", torch.device("cpu"))
    assert not loop.defaults["fused"] and loop.defaults["foreach"] is True


def test_fused_adamw_takes_the_same_step_as_the_loop() -> None:
    torch.manual_seed(0)
    start, grad = torch.randn(8, 8), torch.randn(8, 8)
    results = []
    for args in ("", "foreach=False"):
        p = torch.nn.Parameter(start.clone())
        opt = make_optimizer("AdamW", [{"params": [p], "lr": 1e-2}], 1e-2, args, torch.device("cpu"))
        for _ in range(3):
            p.grad = grad.clone()
            opt.step()
        results.append(p.detach())
    assert torch.allclose(results[0], results[1], atol=1e-6)


def test_to_device_on_a_cpu_is_a_plain_conversion() -> None:
    t = torch.arange(4)
    assert to_device(t, "cpu") is t
    assert to_device(t, torch.device("cpu"), torch.float32).dtype == torch.float32


@pytest.fixture(scope="module")
def unet():
    from trainer.models.tiny import build_tiny_pipeline

    return build_tiny_pipeline("sd15").unet


def test_speed_options_are_off_by_default_and_channels_last_needs_a_gpu(unet) -> None:

    defaults = TrainingConfig.model_fields
    assert defaults["torch_compile"].default is False and defaults["channels_last"].default is False
    cfg = TrainingConfig(channels_last=True, torch_compile=False)
    assert apply_speed_options(cfg, unet, torch.device("cpu")) == []
    assert unet.conv_in.weight.is_contiguous()  # NCHW as before


def test_compile_keeps_every_module_path_so_lora_names_do_not_change(unet) -> None:
    names_before = [name for name, _ in unet.named_modules()]
    keys_before = list(unet.state_dict())
    notes = apply_speed_options(
        TrainingConfig(channels_last=False, torch_compile=True), unet, torch.device("cpu")
    )
    assert notes and "Compiling" in notes[0]
    blocks = unet_blocks(unet)
    assert len(blocks) == len(unet.down_blocks) + 1 + len(unet.up_blocks)
    assert all(block._compiled_call_impl is not None for block in blocks)  # compiled lazily, in place
    assert [name for name, _ in unet.named_modules()] == names_before
    assert list(unet.state_dict()) == keys_before
