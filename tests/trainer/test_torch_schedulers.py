"""lr_scheduler_type: a PyTorch scheduler class by name, from a Kohya preset's "Additional
parameters" or the setting itself, with its arguments checked against the class."""

import pytest

from tests.helpers import load_kohya
from trainer.config.validate import ConfigError


def test_a_kohya_preset_with_a_pytorch_scheduler_in_additional_parameters_loads():
    cfg, warnings = load_kohya(
        lr_scheduler="cosine",
        lr_warmup=10,
        additional_parameters=(
            '--lr_scheduler_type "CosineAnnealingLR" --lr_scheduler_args "T_max=1000" "eta_min=0e-0"'
        ),
    )
    assert (cfg.lr_scheduler_type, cfg.lr_scheduler_args) == ("CosineAnnealingLR", "T_max=1000 eta_min=0e-0")
    assert any("lr_scheduler 'cosine' and the LR warmup are not used" in w for w in warnings)


@pytest.mark.parametrize(
    "kind, args, key, words",
    [
        ("os.system", "", "lr_scheduler_type", "no other code is loaded"),
        ("CosineAnnealingLR", "", "lr_scheduler_args", "needs T_max"),
        ("StepLR", "step_size=10 foo=1", "lr_scheduler_args", "foo: is not an argument of StepLR"),
        ("StepLR", "step_size=2.5", "lr_scheduler_args", "whole number"),
        ("MultiStepLR", "milestones=a,b", "lr_scheduler_args", "step numbers"),
    ],
)
def test_bad_pytorch_schedulers_are_refused_naming_the_field(kind, args, key, words):
    with pytest.raises(ConfigError) as info:
        load_kohya(lr_scheduler_type=kind, lr_scheduler_args=args)
    assert words in " ".join(info.value.by_key()[key])


def test_the_pytorch_scheduler_decides_the_learning_rate():
    import torch

    from trainer.optim.optimizers import make_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(
        opt,
        name="cosine",
        total_steps=100,
        warmup_steps=10,
        args_text="T_max=4 eta_min=0.1",
        scheduler_type="torch.optim.lr_scheduler.CosineAnnealingLR",
    )
    assert isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 1.0  # no warmup: the class decides
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)  # eta_min at T_max


def test_a_schedule_free_optimizer_says_the_pytorch_scheduler_is_not_used():
    _, warnings = load_kohya(
        optimizer="AdamWScheduleFree", lr_scheduler_type="CosineAnnealingLR", lr_scheduler_args="T_max=10"
    )
    assert any("lr_scheduler_type is not used: AdamWScheduleFree" in w for w in warnings)
