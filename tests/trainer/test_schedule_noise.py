"""Learning-rate curves and the noise / loss-weight formulas."""

import math

import pytest
import torch

from tests.helpers import REQUIRED
from trainer.config import ConfigError, config_from_dict
from trainer.config.rules.schedules import lr_factor, scheduler_arg_problems, warmup_steps_for
from trainer.run.noise import (
    debiased_estimation_weights,
    min_snr_weights,
    per_sample_mse,
    sample_noise,
    sample_timesteps,
    snr,
)


def test_warmup_is_a_percent_of_steps_unless_steps_are_given():
    assert warmup_steps_for(100, 10, 0) == 10
    assert warmup_steps_for(100, 10, 25) == 25
    assert warmup_steps_for(7, 10, 0) == 1


@pytest.mark.parametrize(
    "name,step,expected",
    [
        ("constant", 0, 1.0),
        ("constant", 99, 1.0),
        ("constant_with_warmup", 4, 0.5),
        ("constant_with_warmup", 50, 1.0),
        ("linear", 10, 1.0),
        ("linear", 55, 0.5),
        ("cosine", 10, 1.0),
        ("cosine", 55, 0.5),
        ("cosine", 100, 0.0),
        ("polynomial", 55, 0.5),
    ],
)
def test_lr_curves_at_chosen_steps(name, step, expected):
    got = lr_factor(step, name=name, total_steps=100, warmup_steps=10)
    assert got == pytest.approx(expected, abs=1e-6)


def test_cosine_with_restarts_restarts_and_polynomial_power():
    f = [
        lr_factor(s, name="cosine_with_restarts", total_steps=100, warmup_steps=0, num_cycles=2)
        for s in (0, 49, 50, 99)
    ]
    assert f[0] == pytest.approx(1.0) and f[1] < 0.01 and f[2] == pytest.approx(1.0) and f[3] < 0.01
    assert lr_factor(50, name="polynomial", total_steps=100, warmup_steps=0, power=2.0) == pytest.approx(0.25)


def test_cosine_with_min_lr_ends_at_the_floor_given_as_a_rate_or_a_learning_rate():
    f = {"name": "cosine_with_min_lr", "total_steps": 20, "warmup_steps": 0}
    assert lr_factor(0, args={"min_lr_rate": 0.1}, **f) == pytest.approx(1.0)
    assert lr_factor(10, args={"min_lr_rate": 0.1}, **f) == pytest.approx(0.55)  # 0.1 + 0.9 x 0.5
    assert lr_factor(20, args={"min_lr_rate": 0.1}, **f) == pytest.approx(0.1)
    assert lr_factor(10, args={"min_lr": 2e-5}, learning_rate=1e-4, **f) == pytest.approx(0.6)


def test_inverse_sqrt_decays_as_one_over_the_root_of_the_steps():
    f = {"name": "inverse_sqrt", "total_steps": 100, "warmup_steps": 4}
    assert [lr_factor(s, **f) for s in (0, 3, 4)] == pytest.approx([0.25, 1.0, 1.0])
    assert lr_factor(12, **f) == pytest.approx(1 / math.sqrt(3))  # timescale = warmup = 4
    assert lr_factor(16, **f) == pytest.approx(0.5)
    assert lr_factor(16, args={"timescale": 12}, **f) == pytest.approx(1 / math.sqrt(2))
    assert lr_factor(30000, name="inverse_sqrt", total_steps=10, warmup_steps=0) == pytest.approx(0.5)


def test_warmup_stable_decay_phases():
    # 20 steps: warmup 4, decay 0.25 x 20 = 5, so 11 stable steps (4..14), decay 15..19
    f = {"name": "warmup_stable_decay", "total_steps": 20, "warmup_steps": 4}
    args = {"num_decay_steps": 0.25, "min_lr_ratio": 0.1}
    assert lr_factor(0, args=args, **f) == pytest.approx(0.325)  # from 0.1: 0.1 + 0.9 x 1/4
    assert [lr_factor(s, args=args, **f) for s in (3, 4, 14, 15)] == pytest.approx([1.0] * 4)
    assert lr_factor(16, args=args, **f) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(0.2 * math.pi)))
    assert lr_factor(20, args=args, **f) == pytest.approx(0.1)
    sqrt = {"num_decay_steps": 5, "decay_type": "1-sqrt"}
    assert lr_factor(16, args=sqrt, **f) == pytest.approx(1 - math.sqrt(0.2))
    stable = {"num_decay_steps": 5, "num_stable_steps": 2, "warmup_type": "cosine"}
    assert lr_factor(1, args=stable, **f) == pytest.approx(0.5)  # 0.5 (1 - cos(pi/2))
    assert lr_factor(6, args=stable, **f) == pytest.approx(1.0)  # decay starts after 4 + 2
    assert lr_factor(11, args=stable, **f) == 0.0  # after the decay: min_lr_ratio


def test_polynomial_lr_end_is_a_floor():
    f = {"name": "polynomial", "total_steps": 10, "warmup_steps": 0, "power": 2.0}
    assert lr_factor(5, args={"lr_end": 2e-5}, learning_rate=1e-4, **f) == pytest.approx(0.4)
    assert lr_factor(5, **f) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "name,args,words",
    [
        (
            "cosine",
            {"min_lr_rate": 0.1},
            (
                "min_lr_rate: is not an argument of the 'cosine' scheduler "
                "(it takes none; min_lr_rate is for cosine_with_min_lr)"
            ),
        ),
        (
            "cosine_with_restarts",
            {"num_cycles": 3},
            ("num_cycles: is a setting of its own here; use lr_scheduler_num_cycles"),
        ),
        ("cosine_with_min_lr", {}, "needs the lowest learning rate"),
        ("cosine_with_min_lr", {"min_lr": 1e-6, "min_lr_rate": 0.1}, "give only one of them"),
        ("cosine_with_min_lr", {"min_lr_rate": 1.5}, "min_lr_rate=1.5: must be between 0 and 1"),
        (
            "cosine_with_min_lr",
            {"min_lr": 1e-3},
            "min_lr=0.001: must be at least 0 and below the learning rate",
        ),
        ("warmup_stable_decay", {}, "needs num_decay_steps"),
        (
            "warmup_stable_decay",
            {"num_decay_steps": 10, "decay_type": "exp"},
            "decay_type=exp: must be one of",
        ),
        ("warmup_stable_decay", {"num_decay_steps": 2.5}, "num_decay_steps=2.5: must be a whole number"),
        ("inverse_sqrt", {"timescale": "x"}, "timescale=x: must be a number"),
    ],
)
def test_each_scheduler_argument_problem_names_the_key(name, args, words):
    problems = scheduler_arg_problems(name, args, learning_rate=1e-4)
    assert any(words in p for p in problems), problems


def test_warmup_stable_decay_phases_must_fit_the_run():
    assert scheduler_arg_problems(
        "warmup_stable_decay", {"num_decay_steps": 8}, learning_rate=1e-4, total_steps=10, warmup_steps=3
    ) == ["num_decay_steps: warmup (3) + decay (8) steps are more than the 10 steps of this run"]
    assert not scheduler_arg_problems(
        "warmup_stable_decay", {"num_decay_steps": 0.5}, learning_rate=1e-4, total_steps=10, warmup_steps=3
    )


def test_lr_scheduler_args_in_the_config_are_checked_for_the_chosen_scheduler():
    cfg, _ = config_from_dict(
        {**REQUIRED, "lr_scheduler": "cosine_with_min_lr", "lr_scheduler_args": "min_lr_rate=0.1"}
    )
    assert cfg.lr_scheduler_args == "min_lr_rate=0.1"
    with pytest.raises(ConfigError) as err:
        config_from_dict(
            {**REQUIRED, "lr_scheduler": "inverse_sqrt", "lr_scheduler_args": "timescale=100 min_lr=0"}
        )
    assert err.value.by_key() == {
        "lr_scheduler_args": [
            (
                "min_lr: is not an argument of the 'inverse_sqrt' scheduler (it takes timescale; "
                "min_lr is for cosine_with_min_lr)"
            )
        ]
    }
    with pytest.raises(ConfigError) as err:
        config_from_dict({**REQUIRED, "lr_scheduler_args": "__import__('os')"})
    assert "is not key=value" in err.value.by_key()["lr_scheduler_args"][0]  # data, never evaluated


def test_timesteps_stay_in_min_max_and_the_default_draws_as_before():
    t = sample_timesteps(20000, 200, 300, generator=torch.Generator().manual_seed(0))
    assert t.min().item() == 200 and t.max().item() == 299  # [min, max): both ends reached
    assert t.float().mean().item() == pytest.approx(249.5, abs=1.0)
    default = sample_timesteps(64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        default, torch.randint(0, 1000, (64,), generator=torch.Generator().manual_seed(1))
    )


@pytest.mark.parametrize(
    "values,key,words",
    [
        ({"min_timestep": 500, "max_timestep": 400}, "min_timestep", "500 must be below max_timestep 400"),
        ({"min_timestep": 300, "max_timestep": 300}, "min_timestep", "300 must be below max_timestep 300"),
        ({"max_timestep": 1001}, "max_timestep", "<= 1000"),
        ({"min_timestep": -1}, "min_timestep", ">= 0"),
    ],
)
def test_bad_timestep_ranges_are_refused_naming_the_fields(values, key, words):
    with pytest.raises(ConfigError) as err:
        config_from_dict({**REQUIRED, **values})
    assert words in " ".join(err.value.by_key()[key])


def test_debiased_estimation_weights_equal_the_formula_with_snr_capped_at_1000():
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    ac = torch.cumprod(1 - betas, 0)
    t = torch.tensor([0, 500, 999])
    s = ac[t] / (1 - ac[t])
    assert s[0].item() == pytest.approx(0.99915 / 0.00085, rel=1e-4)  # ~1175: capped to 1000
    eps = debiased_estimation_weights(t, ac)
    assert eps[0].item() == pytest.approx(1 / math.sqrt(1000))
    torch.testing.assert_close(eps[1:], 1 / torch.sqrt(s[1:]))
    v = debiased_estimation_weights(t, ac, v_prediction=True)
    assert v[0].item() == pytest.approx(1 / 1001)
    torch.testing.assert_close(v[1:], 1 / (s[1:] + 1))


def test_noise_offset_shifts_the_per_channel_mean():
    lat = torch.zeros(64, 4, 16, 16)
    plain = sample_noise(lat, generator=torch.Generator().manual_seed(0))
    offset = sample_noise(lat, generator=torch.Generator().manual_seed(0), noise_offset=1.0)
    spread_plain = plain.mean(dim=(2, 3)).std()
    spread_offset = offset.mean(dim=(2, 3)).std()
    assert spread_offset > 5 * spread_plain


def test_multires_noise_is_normalised_and_correlated_in_space():
    lat = torch.zeros(8, 4, 32, 32)
    n = sample_noise(
        lat, generator=torch.Generator().manual_seed(0), multires_iterations=6, multires_discount=0.3
    )
    assert n.std().item() == pytest.approx(1.0, abs=1e-4)
    neighbour = (n[..., 1:] * n[..., :-1]).mean().item()
    assert neighbour > 0.02  # plain white noise would give ~0


def test_min_snr_weights_equal_the_formula():
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    ac = torch.cumprod(1 - betas, 0)
    t = torch.tensor([0, 10, 500, 999])
    s = ac[t] / (1 - ac[t])
    torch.testing.assert_close(snr(t, ac), s)
    torch.testing.assert_close(min_snr_weights(t, ac, 5.0), torch.clamp(s, max=5.0) / s)
    torch.testing.assert_close(
        min_snr_weights(t, ac, 5.0, v_prediction=True), torch.clamp(s, max=5.0) / (s + 1)
    )
    assert math.isclose(min_snr_weights(t, ac, 5.0)[-1].item(), 1.0, rel_tol=1e-6)


def test_per_sample_mse():
    a = torch.zeros(2, 4, 2, 2)
    b = torch.ones(2, 4, 2, 2)
    b[1] *= 2
    torch.testing.assert_close(per_sample_mse(a, b), torch.tensor([1.0, 4.0]))


def test_clip_skip_takes_an_earlier_layer_and_long_captions_use_chunks(tiny_model):
    from trainer.models import load_models
    from trainer.text.conditioning import TextConditioner

    m = load_models(str(tiny_model("sd15")))
    one = TextConditioner(m.tokenizers, m.text_encoders, arch="sd1", clip_skip=1)
    two = TextConditioner(m.tokenizers, m.text_encoders, arch="sd1", clip_skip=2)
    with torch.no_grad():
        a, _ = one.encode(["a red square"])
        b, _ = two.encode(["a red square"])
        long = TextConditioner(m.tokenizers, m.text_encoders, arch="sd1", max_token_length=150)
        c, _ = long.encode(["tag, " * 100])
    assert a.shape == b.shape == (1, 77, 32)
    assert not torch.allclose(a, b)
    assert c.shape == (1, 152, 32)
