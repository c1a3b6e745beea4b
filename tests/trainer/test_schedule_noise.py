"""Learning-rate curves and the noise / loss-weight formulas."""
import math

import pytest
import torch

from trainer.noise import min_snr_weights, per_sample_mse, sample_noise, snr
from trainer.schedule import lr_factor, warmup_steps_for


def test_warmup_is_a_percent_of_steps_unless_steps_are_given():
    assert warmup_steps_for(100, 10, 0) == 10
    assert warmup_steps_for(100, 10, 25) == 25
    assert warmup_steps_for(7, 10, 0) == 1


@pytest.mark.parametrize("name,step,expected", [
    ("constant", 0, 1.0), ("constant", 99, 1.0),
    ("constant_with_warmup", 4, 0.5), ("constant_with_warmup", 50, 1.0),
    ("linear", 10, 1.0), ("linear", 55, 0.5), ("cosine", 10, 1.0), ("cosine", 55, 0.5),
    ("cosine", 100, 0.0), ("polynomial", 55, 0.5),
])
def test_lr_curves_at_chosen_steps(name, step, expected):
    got = lr_factor(step, name=name, total_steps=100, warmup_steps=10)
    assert got == pytest.approx(expected, abs=1e-6)


def test_cosine_with_restarts_restarts_and_polynomial_power():
    f = [lr_factor(s, name="cosine_with_restarts", total_steps=100, warmup_steps=0, num_cycles=2)
         for s in (0, 49, 50, 99)]
    assert f[0] == pytest.approx(1.0) and f[1] < 0.01 and f[2] == pytest.approx(1.0) and f[3] < 0.01
    assert lr_factor(50, name="polynomial", total_steps=100, warmup_steps=0, power=2.0) == pytest.approx(0.25)


def test_noise_offset_shifts_the_per_channel_mean():
    lat = torch.zeros(64, 4, 16, 16)
    plain = sample_noise(lat, generator=torch.Generator().manual_seed(0))
    offset = sample_noise(lat, generator=torch.Generator().manual_seed(0), noise_offset=1.0)
    spread_plain = plain.mean(dim=(2, 3)).std()
    spread_offset = offset.mean(dim=(2, 3)).std()
    assert spread_offset > 5 * spread_plain


def test_multires_noise_is_normalised_and_correlated_in_space():
    lat = torch.zeros(8, 4, 32, 32)
    n = sample_noise(lat, generator=torch.Generator().manual_seed(0), multires_iterations=6,
                     multires_discount=0.3)
    assert n.std().item() == pytest.approx(1.0, abs=1e-4)
    neighbour = (n[..., 1:] * n[..., :-1]).mean().item()
    assert neighbour > 0.02  # plain white noise would give ~0


def test_min_snr_weights_equal_the_formula():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
    ac = torch.cumprod(1 - betas, 0)
    t = torch.tensor([0, 10, 500, 999])
    s = ac[t] / (1 - ac[t])
    torch.testing.assert_close(snr(t, ac), s)
    torch.testing.assert_close(min_snr_weights(t, ac, 5.0), torch.clamp(s, max=5.0) / s)
    torch.testing.assert_close(min_snr_weights(t, ac, 5.0, v_prediction=True),
                               torch.clamp(s, max=5.0) / (s + 1))
    assert math.isclose(min_snr_weights(t, ac, 5.0)[-1].item(), 1.0, rel_tol=1e-6)


def test_per_sample_mse():
    a = torch.zeros(2, 4, 2, 2)
    b = torch.ones(2, 4, 2, 2)
    b[1] *= 2
    torch.testing.assert_close(per_sample_mse(a, b), torch.tensor([1.0, 4.0]))


def test_clip_skip_takes_an_earlier_layer_and_long_captions_use_chunks(tiny_model):
    from trainer.models import load_models
    from trainer.text import TextConditioner

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
