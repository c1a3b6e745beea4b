"""The optimizers beyond AdamW that Kohya presets name: D-Adaptation, schedule-free, CAME,
Prodigy+ScheduleFree, and the bitsandbytes ones (whose GPU check is in test_optimizers)."""

import importlib.util

import pytest
import torch

from tests.helpers import CPU, REQUIRED, ToyNet, train_toy
from trainer.config import TrainingConfig, config_from_dict
from trainer.config.rules.optimizer_args import BITSANDBYTES, LR_FREE, SCHEDULE_FREE
from trainer.config.settings.choices import OPTIMIZERS
from trainer.network.param_groups import build_param_groups
from trainer.optim.optimizers import averaged_weights, make_optimizer, make_scheduler

# Kohya name, learning rate, the class sd-scripts builds for it (module, name).
KOHYA_CPU_OPTIMIZERS = [
    ("DAdaptation", 1.0, "dadaptation.experimental", "DAdaptAdamPreprint"),
    ("DAdaptAdamPreprint", 1.0, "dadaptation.experimental", "DAdaptAdamPreprint"),
    ("DAdaptAdaGrad", 1.0, "dadaptation", "DAdaptAdaGrad"),
    ("DAdaptAdan", 1.0, "dadaptation", "DAdaptAdan"),
    ("DAdaptAdanIP", 1.0, "dadaptation.experimental", "DAdaptAdanIP"),
    ("DAdaptLion", 1.0, "dadaptation", "DAdaptLion"),
    ("DAdaptSGD", 1.0, "dadaptation", "DAdaptSGD"),
    ("AdamWScheduleFree", 1e-2, "schedulefree", "AdamWScheduleFree"),
    ("RAdamScheduleFree", 1e-2, "schedulefree", "RAdamScheduleFree"),
    ("SGDScheduleFree", 1e-1, "schedulefree", "SGDScheduleFree"),
    ("pytorch_optimizer.CAME", 1e-3, "pytorch_optimizer", "CAME"),
    ("prodigyplus.ProdigyPlusScheduleFree", 1.0, "prodigyplus", "ProdigyPlusScheduleFree"),
]


def kohya_preset(name: str, lr: float, **over) -> dict:
    """The keys a Kohya GUI preset holds for the optimizer (learning rates as strings at times)."""
    return {
        **REQUIRED,
        "optimizer": name,
        "learning_rate": lr,
        "unet_lr": lr,
        "text_encoder_lr": lr,
        "lr_scheduler": "cosine",
        "lr_warmup": 0,
        "optimizer_args": "",
        **over,
    }


@pytest.mark.parametrize("name,lr,module,cls", KOHYA_CPU_OPTIMIZERS)
def test_each_kohya_optimizer_is_sd_scripts_class_and_lowers_a_toy_loss(name, lr, module, cls):
    cfg, _ = config_from_dict(kohya_preset(name, lr))
    net = ToyNet()
    groups = build_param_groups(net, unet_lr=cfg.unet_lr, text_encoder_lr=cfg.text_encoder_lr)
    optimizer = make_optimizer(cfg.optimizer, groups, cfg.learning_rate, cfg.optimizer_args, CPU)
    assert (type(optimizer).__module__.startswith(module), type(optimizer).__name__) == (True, cls)
    scheduler = make_scheduler(
        optimizer, name=cfg.lr_scheduler, total_steps=6, warmup_steps=0, initial_lr=cfg.learning_rate
    )
    with averaged_weights(optimizer):  # the model a schedule-free optimizer trains
        before = net.loss().item()
    for _ in range(5):
        net.loss().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    with averaged_weights(optimizer):
        after = net.loss().item()
    assert after < before, f"{name}: {before} -> {after}"


@pytest.mark.parametrize("name", [n for n in LR_FREE if n not in ("Prodigy", "DAdaptAdam")])
def test_new_learning_rate_free_optimizers_get_the_learning_rate_advice(name):
    _, warnings = config_from_dict(kohya_preset(name, 1e-4, unet_lr=0, text_encoder_lr=0))
    assert any(name in w and "1.0" in w and "learning_rate 0.0001" in w for w in warnings)
    _, warnings = config_from_dict(kohya_preset(name, 1.0, lr_scheduler="constant"))
    assert not any("around 1.0" in w for w in warnings)


@pytest.mark.parametrize("name", SCHEDULE_FREE)
def test_schedule_free_optimizers_keep_a_constant_learning_rate_and_say_the_schedule_is_unused(name):
    _, warnings = config_from_dict(kohya_preset(name, 1.0, lr_scheduler="cosine", lr_warmup=10))
    assert any(name in w and "lr_scheduler 'cosine' and the LR warmup have no effect" in w for w in warnings)
    _, warnings = config_from_dict(kohya_preset(name, 1.0, lr_scheduler="adafactor"))  # no error
    assert any("has no effect" in w for w in warnings)
    _, warnings = config_from_dict(kohya_preset(name, 1.0, lr_scheduler="constant"))
    assert not any("no effect" in w for w in warnings)
    net = ToyNet()
    optimizer = make_optimizer(name, build_param_groups(net, unet_lr=1.0, text_encoder_lr=0.5), 1.0, "", CPU)
    scheduler = make_scheduler(
        optimizer,
        name="cosine",
        total_steps=10,
        warmup_steps=5,
        initial_lr=1.0,
        scheduler_type="torch.optim.lr_scheduler.StepLR",
    )
    train_toy(net, optimizer, scheduler, steps=8)
    assert [g["lr"] for g in optimizer.param_groups] == [0.5, 1.0]


def test_averaged_weights_swaps_in_the_average_and_back_and_leaves_other_optimizers_alone():
    net = ToyNet()
    optimizer = make_optimizer(
        "AdamWScheduleFree", build_param_groups(net, unet_lr=1e-2, text_encoder_lr=1e-2), 1e-2, "", CPU
    )
    for _ in range(3):
        net.loss().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    training_point = [p.detach().clone() for p in params]
    with averaged_weights(optimizer):
        assert not optimizer.param_groups[0]["train_mode"]
        assert any(not torch.equal(p, y) for p, y in zip(params, training_point, strict=True))
    assert optimizer.param_groups[0]["train_mode"]
    for p, y in zip(params, training_point, strict=True):
        torch.testing.assert_close(p.detach(), y, rtol=0, atol=1e-7)
    adamw = make_optimizer(
        "AdamW", build_param_groups(net, unet_lr=1e-2, text_encoder_lr=1e-2), 1e-2, "", CPU
    )
    with averaged_weights(adamw):
        assert all(torch.equal(p, y) for p, y in zip(params, training_point, strict=True))


def test_a_stopped_text_encoder_keeps_its_averaged_weights():
    from trainer.run.options import StepHooks

    net = ToyNet()
    optimizer = make_optimizer(
        "AdamWScheduleFree", build_param_groups(net, unet_lr=1e-2, text_encoder_lr=1e-2), 1e-2, "", CPU
    )
    train_toy(net, optimizer, steps=3)
    te = net.te_loras[0].lora_down.weight
    with averaged_weights(optimizer):
        average = te.detach().clone()
    hooks = StepHooks(
        TrainingConfig(stop_text_encoder_training=50),
        net,
        optimizer,
        4,
        CPU,
        lambda event: None,
        train_text_encoder=True,
    )
    hooks.stop_text_encoder(2)
    assert optimizer.param_groups[0]["train_mode"]
    train_toy(net, optimizer, steps=2)  # the U-Net goes on; the frozen text encoder gets no gradient
    with averaged_weights(optimizer):  # what a save writes
        torch.testing.assert_close(te.detach(), average, rtol=0, atol=0)
    assert optimizer.state_dict()["state"]  # its optimizer state is still in place


def test_families_are_listed_and_every_optional_package_is_named_for_the_preflight(monkeypatch, tmp_path):
    from trainer.run.preflight_options import _OPTIMIZER_PACKAGES, option_preflight

    assert set(BITSANDBYTES) | set(LR_FREE) | set(SCHEDULE_FREE) <= set(OPTIMIZERS)
    built_in = {"AdamW", "Adafactor", "SGDNesterov"}  # torch and transformers
    assert set(OPTIMIZERS) - set(BITSANDBYTES) - built_in == set(_OPTIMIZER_PACKAGES)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "prodigyplus" else real(name, *a)
    )
    cfg = TrainingConfig(optimizer="prodigyplus.ProdigyPlusScheduleFree", output_dir=str(tmp_path))
    messages = [p.message for p in option_preflight(cfg, cuda=False) if p.key == "optimizer"]
    assert messages and "pip install prodigy-plus-schedule-free" in messages[0]


def test_out_of_memory_advice_suggests_8bit_unless_a_bitsandbytes_optimizer_is_chosen():
    from trainer.run.guards import out_of_memory_message

    error = RuntimeError("CUDA out of memory")
    _, hint = out_of_memory_message(TrainingConfig(optimizer="AdamWScheduleFree"), error)
    assert "AdamW8bit" in hint
    _, hint = out_of_memory_message(TrainingConfig(optimizer="bitsandbytes.optim.PagedAdEMAMix8bit"), error)
    assert "AdamW8bit" not in hint
