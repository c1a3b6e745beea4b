"""Optimizers by their Kohya names, optimizer_args, the Adafactor rules and every LR schedule."""

import math
import sys
import types

import pytest
import torch

from tests.helpers import CPU, REQUIRED, ToyNet, train_toy
from trainer.config import ConfigError, config_from_dict
from trainer.config.rules.optimizer_args import ADAFACTOR_FIXED_LR_ARGS, BITSANDBYTES
from trainer.config.settings.choices import OPTIMIZERS, SCHEDULERS
from trainer.network.param_groups import build_param_groups
from trainer.optim.optimizers import make_optimizer, make_scheduler, parse_optimizer_args


def lora_weights(net: ToyNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items() if ".lora_" in k}


CPU_OPTIMIZERS = [
    ("AdamW", 1e-2, ""),
    ("Adafactor", 1e-2, ""),
    ("Adafactor", 1e-2, ADAFACTOR_FIXED_LR_ARGS),
    ("Lion", 1e-3, ""),
    ("SGDNesterov", 1e-1, ""),
    ("Prodigy", 1.0, ""),
    ("DAdaptAdam", 1.0, ""),
]


@pytest.mark.parametrize("name,lr,args", CPU_OPTIMIZERS)
def test_each_optimizer_changes_both_lora_halves_over_two_steps(name, lr, args):
    net = ToyNet()
    before = lora_weights(net)
    groups = build_param_groups(net, unet_lr=lr, text_encoder_lr=lr)
    optimizer = make_optimizer(name, groups, lr, args, CPU)
    train_toy(net, optimizer, steps=2)
    after = lora_weights(net)
    for key in before:  # up moves on step 1 (it starts at 0), down on step 2
        assert torch.isfinite(after[key]).all(), key
        assert not torch.equal(before[key], after[key]), f"{name}: {key} did not change"


def test_every_listed_optimizer_is_built_and_the_8bit_ones_come_from_bitsandbytes(monkeypatch):
    made = {}

    def recorder(cls_name):
        class Recorder(torch.optim.SGD):
            def __init__(self, params, lr, **kwargs):
                made[cls_name] = kwargs
                super().__init__(params, lr=lr)

        return Recorder

    names = (
        "AdamW8bit",
        "PagedAdamW8bit",
        "PagedAdamW32bit",
        "Lion8bit",
        "PagedLion8bit",
        "SGD8bit",
        "AdEMAMix8bit",
        "PagedAdEMAMix8bit",
    )
    fake = types.SimpleNamespace(optim=types.SimpleNamespace(**{n: recorder(n) for n in names}))
    for name in OPTIMIZERS:
        groups = build_param_groups(ToyNet(), unet_lr=1e-4, text_encoder_lr=1e-4)
        with monkeypatch.context() as mp:  # only the bitsandbytes ones see the stand-in
            if name in BITSANDBYTES:
                mp.setitem(sys.modules, "bitsandbytes", fake)
            assert isinstance(make_optimizer(name, groups, 1e-4, "", CPU), torch.optim.Optimizer), name
    assert set(made) == set(names)
    assert made["SGD8bit"] == {"momentum": 0.9, "nesterov": True}  # Kohya's SGDNesterov defaults


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("name", BITSANDBYTES)
def test_bitsandbytes_optimizers_are_refused_before_loading_on_a_machine_without_cuda(name, tmp_path):
    from trainer.run.preflight import run_preflight

    cfg, _ = config_from_dict(
        {**REQUIRED, "optimizer": name, "mixed_precision": "no", "output_dir": str(tmp_path)}
    )  # Kohya's spelling loads
    problems, _ = run_preflight(cfg)
    messages = [p.message for p in problems if p.key == "optimizer"]
    assert messages and name in messages[0] and "NVIDIA GPU" in messages[0] and "AdamW" in messages[0]


def test_optimizer_args_are_parsed_as_data_and_bad_ones_name_the_setting():
    assert parse_optimizer_args("weight_decay=0.01 betas=0.9,0.99 relative_step=False eps=1e-8") == {
        "weight_decay": 0.01,
        "betas": (0.9, 0.99),
        "relative_step": False,
        "eps": 1e-8,
    }
    assert parse_optimizer_args("decouple=True d0=1e-6") == {"decouple": True, "d0": 1e-6}
    for bad in ("weight_decay", "__import__('os')=1", "x="):
        with pytest.raises(ConfigError) as info:
            parse_optimizer_args(bad)
        assert "optimizer_args" in info.value.by_key()
    groups = build_param_groups(ToyNet(), unet_lr=1e-4, text_encoder_lr=1e-4)
    with pytest.raises(ConfigError) as info:
        make_optimizer("AdamW", groups, 1e-4, "no_such_arg=1", CPU)
    assert "no_such_arg" in info.value.by_key()["optimizer_args"][0]
    with pytest.raises(ConfigError):  # the config check names it too, before any model loads
        config_from_dict({**REQUIRED, "optimizer": "AdamW", "optimizer_args": "oops"})


def test_adafactor_with_warmup_is_explained_with_both_working_combinations():
    with pytest.raises(ConfigError) as info:  # the Kohya GUI crashes here at run time
        config_from_dict({**REQUIRED, "optimizer": "Adafactor", "lr_warmup": 10})
    message = info.value.by_key()["lr_warmup"][0]
    assert "'adafactor'" in message and ADAFACTOR_FIXED_LR_ARGS in message
    assert "constant_with_warmup" in message
    # Both offered combinations load without a problem.
    _, warnings = config_from_dict(
        {**REQUIRED, "optimizer": "Adafactor", "lr_warmup": 0, "lr_scheduler": "adafactor"}
    )
    assert warnings == []
    _, warnings = config_from_dict(
        {
            **REQUIRED,
            "optimizer": "Adafactor",
            "lr_warmup": 10,
            "optimizer_args": ADAFACTOR_FIXED_LR_ARGS,
            "lr_scheduler": "constant_with_warmup",
        }
    )
    assert warnings == []
    # Another schedule with relative_step: said to have no effect, as Kohya silently does.
    _, warnings = config_from_dict({**REQUIRED, "optimizer": "Adafactor", "lr_warmup": 0})
    assert any("no effect" in w for w in warnings)
    _, warnings = config_from_dict(
        {
            **REQUIRED,
            "optimizer": "Adafactor",
            "lr_warmup": 0,
            "lr_scheduler": "adafactor",
            "optimizer_args": "relative_step=False warmup_init=True",
        }
    )
    assert any("warmup_init=True needs relative_step=True" in w for w in warnings)
    _, warnings = config_from_dict(
        {
            **REQUIRED,
            "optimizer": "Adafactor",
            "lr_warmup": 0,
            "lr_scheduler": "adafactor",
            "loraplus_lr_ratio": 16,
        }
    )
    assert any("loraplus_lr_ratio have no effect" in w for w in warnings)  # one step-size rule
    with pytest.raises(ConfigError) as info:
        config_from_dict({**REQUIRED, "optimizer": "AdamW", "lr_scheduler": "adafactor"})
    assert "Adafactor" in info.value.by_key()["lr_scheduler"][0]


def test_relative_step_adafactor_picks_its_own_step_size_and_the_schedule_reports_it():
    net = ToyNet()
    groups = build_param_groups(net, unet_lr=1e-4, text_encoder_lr=1e-4)
    optimizer = make_optimizer("Adafactor", groups, 1e-4, "", CPU)
    assert optimizer.defaults["lr"] is None and optimizer.defaults["relative_step"]
    scheduler = make_scheduler(optimizer, name="adafactor", total_steps=10, warmup_steps=0, initial_lr=1e-4)
    assert scheduler.get_last_lr() == [1e-4, 1e-4]  # before the first step: the initial LR
    train_toy(net, optimizer, scheduler, steps=1)
    for lr, group in zip(scheduler.get_last_lr(), optimizer.param_groups, strict=True):
        rms = group["params"][0].detach().pow(2).mean().sqrt().item()
        assert lr == pytest.approx(1e-2 * max(1e-3, rms), rel=1e-5)  # min(1e-2, 1/sqrt(step)) x RMS


def test_fixed_lr_adafactor_follows_the_warmup_schedule():
    net = ToyNet()
    groups = build_param_groups(net, unet_lr=1e-3, text_encoder_lr=1e-3)
    optimizer = make_optimizer("Adafactor", groups, 1e-3, ADAFACTOR_FIXED_LR_ARGS, CPU)
    scheduler = make_scheduler(optimizer, name="constant_with_warmup", total_steps=20, warmup_steps=4)
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(5):
        train_toy(net, optimizer, scheduler, steps=1)
        lrs.append(scheduler.get_last_lr()[0])
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


@pytest.mark.parametrize("name", ["Prodigy", "DAdaptAdam"])
def test_learning_rate_free_optimizers_warn_about_a_learning_rate_far_from_one(name):
    _, warnings = config_from_dict(
        {**REQUIRED, "optimizer": name, "learning_rate": 1e-4, "unet_lr": 0, "text_encoder_lr": 0}
    )
    assert any(name in w and "1.0" in w and "learning_rate 0.0001" in w for w in warnings)
    _, warnings = config_from_dict(
        {**REQUIRED, "optimizer": name, "learning_rate": 1.0, "unet_lr": 1.0, "text_encoder_lr": 0.5}
    )
    assert not any(name in w for w in warnings)


# LR factor at chosen steps, 100 steps with 10 warmup steps (closed forms, not our code).
_CURVES = {
    "constant": {0: 1.0, 5: 1.0, 99: 1.0},
    "constant_with_warmup": {0: 0.1, 4: 0.5, 9: 1.0, 50: 1.0},
    "linear": {4: 0.5, 10: 1.0, 55: 0.5, 100: 0.0},
    "cosine": {4: 0.5, 10: 1.0, 40: 0.5 * (1 + math.cos(math.pi / 3)), 55: 0.5, 100: 0.0},
    "cosine_with_restarts": {
        10: 1.0,
        32: 0.5 * (1 + math.cos(math.pi * 44 / 90)),
        55: 1.0,
        77: 0.5 * (1 + math.cos(math.pi * (134 / 90 % 1))),
    },
    "polynomial": {4: 0.5, 10: 1.0, 55: 0.25, 100: 0.0},  # power 2
    # min_lr_rate 0.2, 2 cycles: half-waves of cos(pi 2 p) between 1 and 0.2
    "cosine_with_min_lr": {
        4: 0.5,
        10: 1.0,
        32: 0.2 + 0.4 * (1 + math.cos(math.pi * 44 / 90)),
        55: 0.2,
        100: 1.0,
    },
    # timescale 40: 1 / sqrt((step - 10 + 40) / 40)
    "inverse_sqrt": {4: 0.5, 10: 1.0, 50: 2**-0.5, 130: 0.5},
    # min_lr_ratio 0.1: warmup from 0.1, 70 stable steps, a linear decay over the last 20
    "warmup_stable_decay": {4: 0.55, 10: 1.0, 79: 1.0, 90: 0.55, 100: 0.1},
}
_ARGS = {
    "cosine_with_min_lr": "min_lr_rate=0.2",
    "inverse_sqrt": "timescale=40",
    "warmup_stable_decay": "num_decay_steps=20 min_lr_ratio=0.1 decay_type=linear",
}


@pytest.mark.parametrize("name", [s for s in SCHEDULERS if s != "adafactor"])
def test_each_scheduler_sets_the_learning_rate_of_the_real_optimizer_at_chosen_steps(name):
    net = ToyNet()
    groups = build_param_groups(net, unet_lr=0.1, text_encoder_lr=0.05)
    optimizer = make_optimizer("AdamW", groups, 0.1, "", CPU)
    scheduler = make_scheduler(
        optimizer,
        name=name,
        total_steps=100,
        warmup_steps=10,
        num_cycles=2,
        power=2.0,
        args_text=_ARGS.get(name, ""),
    )
    expected = _CURVES[name]
    seen = {}
    for step in range(max(expected) + 1):
        if step in expected:
            seen[step] = [g["lr"] for g in optimizer.param_groups]
        train_toy(net, optimizer, scheduler, steps=1) if step < 12 else scheduler.step()
    for step, factor in expected.items():
        assert seen[step] == pytest.approx([0.05 * factor, 0.1 * factor], abs=1e-9), (name, step)


def test_the_seed_recipe_preset_is_the_guides_adafactor_recipe():
    import json
    from pathlib import Path

    raw = json.loads((Path(__file__).resolve().parents[2] / "presets" / "seed_recipe.json").read_text())
    cfg, warnings = config_from_dict({**raw, **REQUIRED})
    assert (cfg.optimizer, cfg.lr_scheduler, cfg.lr_warmup) == ("Adafactor", "adafactor", 0)
    assert parse_optimizer_args(cfg.optimizer_args)["relative_step"] is True
    assert warnings == []


def test_min_lr_and_lr_end_are_read_against_the_optimizers_learning_rate():
    net = ToyNet()
    groups = build_param_groups(net, unet_lr=0.1, text_encoder_lr=0.05)
    optimizer = make_optimizer("AdamW", groups, 0.1, "", CPU)
    scheduler = make_scheduler(
        optimizer, name="cosine_with_min_lr", total_steps=10, warmup_steps=0, args_text="min_lr=0.01"
    )  # 10% of Learning rate 0.1
    train_toy(net, optimizer, scheduler, steps=10)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.005, 0.01])
    optimizer = make_optimizer(
        "AdamW", build_param_groups(net, unet_lr=0.1, text_encoder_lr=0.1), 0.1, "", CPU
    )
    scheduler = make_scheduler(
        optimizer, name="polynomial", total_steps=10, warmup_steps=0, args_text="lr_end=0.02"
    )
    train_toy(net, optimizer, scheduler, steps=10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.02)


@pytest.mark.parametrize(
    "name,args,words",
    [
        ("cosine_with_min_lr", "", "needs the lowest learning rate"),
        ("warmup_stable_decay", "num_decay_steps=95", "more than the 100 steps"),
        ("inverse_sqrt", "timescale=-1", "timescale=-1: must be above 0"),
        ("cosine", "eta_min=0", "not an argument of the 'cosine' scheduler"),
        ("linear", "min_lr=", "not key=value"),
    ],
)
def test_scheduler_arguments_that_do_not_fit_are_config_errors_naming_the_key(name, args, words):
    optimizer = make_optimizer(
        "AdamW", build_param_groups(ToyNet(), unet_lr=0.1, text_encoder_lr=0.1), 0.1, "", CPU
    )
    with pytest.raises(ConfigError) as err:
        make_scheduler(optimizer, name=name, total_steps=100, warmup_steps=10, args_text=args)
    assert err.value.problems[0].key == "lr_scheduler_args" and words in str(err.value)
