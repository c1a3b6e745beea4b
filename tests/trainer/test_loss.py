"""Loss types, Huber schedules, the v-prediction scale and the extra noise options."""

import math
from types import SimpleNamespace

import pytest
import torch

from trainer.run.loss import add_v_pred_like_loss, huber_threshold, per_sample_loss, v_pred_loss_scale
from trainer.run.noise import perturb_noise, sample_noise, snr
from trainer.run.options import noise_kwargs, per_sample_training_loss

BETAS = torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
AC = torch.cumprod(1 - BETAS, 0)  # the DDPM schedule of SD (docs/ANCHORS.md section 7)


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def loss_cfg(**over) -> SimpleNamespace:
    """The loss settings at their defaults, with `over` changed."""
    values = {
        "loss_type": "l2",
        "huber_schedule": "snr",
        "huber_c": 0.1,
        "huber_scale": 1.0,
        "scale_v_pred_loss_like_noise_pred": False,
        "v_pred_like_loss": 0.0,
        "debiased_estimation_loss": False,
    }
    return SimpleNamespace(**{**values, **over})


def test_l2_and_l1_are_the_mean_squared_and_absolute_error_per_sample():
    pred, target = torch.randn(3, 4, 8, 8, generator=g(1)), torch.randn(3, 4, 8, 8, generator=g(2))
    torch.testing.assert_close(
        per_sample_loss(pred, target, "l2"), ((pred - target) ** 2).mean(dim=(1, 2, 3))
    )
    torch.testing.assert_close(per_sample_loss(pred, target, "l1"), (pred - target).abs().mean(dim=(1, 2, 3)))


def test_huber_and_smooth_l1_equal_the_pseudo_huber_formula():
    pred, target = torch.randn(2, 4, 8, 8, generator=g(1)), torch.randn(2, 4, 8, 8, generator=g(2))
    c = torch.tensor([0.1, 0.5])
    d2 = (pred - target) ** 2
    cc = c.view(-1, 1, 1, 1)
    huber = (2 * cc * (torch.sqrt(d2 + cc**2) - cc)).mean(dim=(1, 2, 3))
    torch.testing.assert_close(per_sample_loss(pred, target, "huber", c), huber)
    torch.testing.assert_close(per_sample_loss(pred, target, "smooth_l1", c), huber / c)
    with pytest.raises(ValueError):
        per_sample_loss(pred, target, "huber")


def test_huber_is_squared_for_small_errors_and_linear_for_outliers():
    c = torch.tensor([0.1])
    small = torch.full((1, 1, 2, 2), 0.01)
    big = torch.full((1, 1, 2, 2), 100.0)
    zero = torch.zeros(1, 1, 2, 2)
    # Small: ~d^2 like l2.  Large: ~2c|d|, so an outlier pulls 2c/|d| times less than with l2.
    assert per_sample_loss(small, zero, "huber", c).item() == pytest.approx(1e-4, rel=0.01)
    assert per_sample_loss(big, zero, "huber", c).item() == pytest.approx(2 * 0.1 * 100, rel=0.01)
    assert per_sample_loss(big, zero, "l2").item() == pytest.approx(1e4)


def test_huber_schedules_at_chosen_timesteps():
    t = torch.tensor([0, 500, 999])
    const = huber_threshold(t, AC, schedule="constant", huber_c=0.1, huber_scale=2.0)
    torch.testing.assert_close(const, torch.full((3,), 0.2))
    exp = huber_threshold(t, AC, schedule="exponential", huber_c=0.1, huber_scale=2.0)
    alpha = -math.log(0.1) / 1000
    torch.testing.assert_close(exp, torch.exp(-alpha * t.float()) * 2.0)
    assert exp[0].item() == pytest.approx(2.0) and exp[-1].item() == pytest.approx(0.2, rel=0.01)
    snr_c = huber_threshold(t, AC, schedule="snr", huber_c=0.1)
    sigma = ((1 - AC[t]) / AC[t]).sqrt()
    torch.testing.assert_close(snr_c, (1 - 0.1) / (1 + sigma) ** 2 + 0.1)
    assert snr_c[0] > 0.8 and snr_c[-1].item() == pytest.approx(0.1, abs=0.01)  # clean: ~l2, noisy: c


def test_v_prediction_scale_is_snr_over_snr_plus_one_and_only_for_v_models():
    t = torch.tensor([0, 10, 500, 999])
    s = torch.clamp(snr(t, AC), max=1000)
    torch.testing.assert_close(v_pred_loss_scale(t, AC), s / (s + 1))
    cfg = loss_cfg(scale_v_pred_loss_like_noise_pred=True)
    pred, target = torch.ones(4, 1, 2, 2), torch.zeros(4, 1, 2, 2)
    scaled = per_sample_training_loss(cfg, pred, target, t, AC, v_prediction=True, num_train_timesteps=1000)
    plain = per_sample_training_loss(cfg, pred, target, t, AC, v_prediction=False, num_train_timesteps=1000)
    torch.testing.assert_close(scaled, s / (s + 1))
    torch.testing.assert_close(plain, torch.ones(4))


def test_the_configured_huber_loss_reaches_the_step():
    cfg = loss_cfg(loss_type="huber", huber_schedule="constant", huber_c=0.5)
    pred, target = torch.full((2, 1, 2, 2), 3.0), torch.zeros(2, 1, 2, 2)
    got = per_sample_training_loss(
        cfg, pred, target, torch.tensor([1, 2]), AC, v_prediction=False, num_train_timesteps=1000
    )
    expected = 2 * 0.5 * (math.sqrt(9 + 0.25) - 0.5)
    torch.testing.assert_close(got, torch.full((2,), expected))


def test_v_pred_like_loss_adds_the_loss_over_snr_over_snr_plus_one():
    t = torch.tensor([0, 999])
    s999 = (AC[999] / (1 - AC[999])).item()
    loss = torch.tensor([2.0, 2.0])
    got = add_v_pred_like_loss(loss, t, AC, 0.1)
    # t=0: snr capped at 1000, scale 1000/1001 -> 2 + 2 x 1.001 x 0.1
    assert got[0].item() == pytest.approx(2.2002, rel=1e-5)
    assert got[1].item() == pytest.approx(2 + 2 * (s999 + 1) / s999 * 0.1, rel=1e-4)


@pytest.mark.parametrize("v_prediction", [False, True])
def test_v_pred_like_and_debiased_weights_reach_the_loss_of_the_step(v_prediction):
    t = torch.tensor([0, 100, 500, 999])
    s = torch.clamp(snr(t, AC), max=1000)
    pred, target = torch.ones(4, 1, 2, 2), torch.zeros(4, 1, 2, 2)  # l2 loss 1 per sample
    cfg = loss_cfg(v_pred_like_loss=0.2, debiased_estimation_loss=True)
    got = per_sample_training_loss(
        cfg, pred, target, t, AC, v_prediction=v_prediction, num_train_timesteps=1000
    )
    debias = 1 / (s + 1) if v_prediction else 1 / torch.sqrt(s)
    torch.testing.assert_close(got, (1 + 0.2 * (s + 1) / s) * debias)
    off = per_sample_training_loss(
        loss_cfg(), pred, target, t, AC, v_prediction=v_prediction, num_train_timesteps=1000
    )
    torch.testing.assert_close(off, torch.ones(4))  # both off: the plain loss


def test_adaptive_noise_scale_adds_the_channel_mean_to_the_offset():
    lat = torch.zeros(256, 4, 8, 8)
    lat[:, 0] = 2.0  # channel 0 far from zero: mean |2|
    base = sample_noise(lat, generator=g(), noise_offset=0.1)
    adaptive = sample_noise(lat, generator=g(), noise_offset=0.1, adaptive_noise_scale=0.5)
    # Same random draws; the per-channel shift is offset (0.1) + 0.5 x |mean| (1.0 on channel 0).
    plain = torch.randn(lat.shape, generator=g())
    shift_base = (base - plain).mean(dim=(2, 3))
    shift_adaptive = (adaptive - plain).mean(dim=(2, 3))
    torch.testing.assert_close(
        shift_adaptive[:, 0], shift_base[:, 0] * (0.1 + 1.0) / 0.1, rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(shift_adaptive[:, 1], shift_base[:, 1], rtol=1e-4, atol=1e-5)


def test_random_strength_draws_the_offset_between_zero_and_noise_offset():
    lat = torch.zeros(64, 4, 8, 8)
    plain = torch.randn(lat.shape, generator=g(3))
    fixed = sample_noise(lat, generator=g(3), noise_offset=0.5)
    randomised = sample_noise(lat, generator=g(3), noise_offset=0.5, noise_offset_random_strength=True)
    spread_fixed = (fixed - plain).mean(dim=(2, 3)).std()
    spread_random = (randomised - plain).mean(dim=(2, 3)).std()
    assert 0 < spread_random < spread_fixed


def test_input_perturbation_adds_gamma_times_fresh_noise_and_zero_is_off():
    noise = torch.randn(8, 4, 16, 16, generator=g(1))
    assert perturb_noise(noise, 0.0) is noise
    perturbed = perturb_noise(noise, 0.1, generator=g(5))
    torch.testing.assert_close(perturbed, noise + 0.1 * torch.randn(noise.shape, generator=g(5)))
    randomised = perturb_noise(noise, 0.1, random_strength=True, generator=g(5))
    strength = (randomised - noise).std() / (perturbed - noise).std()
    assert 0 <= strength.item() < 1.0


def test_noise_settings_follow_the_noise_offset_type():
    cfg = SimpleNamespace(
        noise_offset_type="Original",
        noise_offset=0.1,
        adaptive_noise_scale=0.2,
        noise_offset_random_strength=True,
        multires_noise_iterations=6,
        multires_noise_discount=0.3,
    )
    assert noise_kwargs(cfg) == {
        "noise_offset": 0.1,
        "adaptive_noise_scale": 0.2,
        "noise_offset_random_strength": True,
        "multires_iterations": 0,
        "multires_discount": 0.3,
    }
    cfg.noise_offset_type = "Multires"
    kw = noise_kwargs(cfg)
    assert kw["noise_offset"] == 0 and kw["adaptive_noise_scale"] == 0 and kw["multires_iterations"] == 6
