"""LoRA module maths, and the round trip through diffusers on the tiny models (the targets
and their names are in test_lora_names.py)."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from torch import nn

from trainer.network import KOHYA_PREFIXES, LoRAModule, LoRANetwork
from trainer.network.lora_file import save_lora

# ---------------------------------------------------------------------------- module


def _randomise_up(loras, seed: int = 0, std: float = 0.2) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for lora in loras:
            w = lora.lora_up.weight
            w.copy_(torch.randn(w.shape, generator=gen) * std)


def test_hand_computed_delta_with_scale_and_multiplier():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    lora = LoRAModule("t", base, rank=4, alpha=2.0, multiplier=0.5)
    _randomise_up([lora])
    x = torch.randn(3, 6)
    expected = base(x) + (x @ lora.lora_down.weight.T @ lora.lora_up.weight.T) * 0.5 * (2.0 / 4)
    torch.testing.assert_close(lora(x), expected)


@pytest.mark.parametrize("alpha", [0, None])
def test_alpha_zero_or_none_means_scale_one(alpha):
    lora = LoRAModule("t", nn.Linear(4, 4), rank=8, alpha=alpha)
    assert lora.scale == 1.0
    assert float(lora.alpha) == 8.0


def test_down_is_kaiming_and_up_is_zero():
    lora = LoRAModule("t", nn.Linear(64, 32), rank=16, alpha=1)
    bound = 1 / math.sqrt(64)  # kaiming_uniform_(a=sqrt(5)) on fan_in 64
    assert lora.lora_down.weight.abs().max() <= bound
    assert lora.lora_down.weight.std() > bound / 4
    assert torch.count_nonzero(lora.lora_up.weight) == 0


@pytest.mark.parametrize(
    "base",
    [nn.Linear(8, 6), nn.Conv2d(8, 6, 3, stride=2, padding=1), nn.Conv2d(8, 6, 1)],
    ids=["linear", "conv3x3", "conv1x1"],
)
def test_merged_weights_give_the_unmerged_output(base):
    torch.manual_seed(0)
    lora = LoRAModule("t", base, rank=4, alpha=1.0, multiplier=0.7)
    lora.apply_to()
    _randomise_up([lora])
    x = torch.randn(2, 8, 9, 9) if isinstance(base, nn.Conv2d) else torch.randn(2, 5, 8)
    before = base(x).detach()
    if isinstance(base, nn.Conv2d):  # down keeps the base geometry, up is 1x1
        assert lora.lora_down.kernel_size == base.kernel_size and lora.lora_down.stride == base.stride
        assert lora.lora_up.kernel_size == (1, 1)
    lora.merge_to_base()
    lora.restore()
    torch.testing.assert_close(base(x), before, atol=1e-5, rtol=1e-5)
    lora.unmerge_from_base()


def test_merge_refuses_non_finite_delta():
    base = nn.Linear(4, 4)
    original = base.weight.detach().clone()
    lora = LoRAModule("t", base, rank=2, alpha=1)
    with torch.no_grad():
        lora.lora_up.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        lora.merge_to_base()
    assert torch.equal(base.weight, original)


def test_lora_weights_stay_fp32_with_a_bf16_base():
    torch.manual_seed(0)
    base = nn.Linear(8, 8).to(torch.bfloat16)
    lora = LoRAModule("t", base, rank=4, alpha=4)
    lora.apply_to()
    _randomise_up([lora])
    y = base(torch.randn(2, 8, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16
    assert {p.dtype for p in lora.parameters()} == {torch.float32}
    y.float().sum().backward()
    assert lora.lora_down.weight.grad is not None and lora.lora_down.weight.grad.dtype == torch.float32


def test_dropouts_act_only_in_training():
    torch.manual_seed(0)
    base = nn.Linear(16, 16)
    lora = LoRAModule("t", base, rank=8, alpha=8, dropout=0.5, rank_dropout=0.5, module_dropout=0.3)
    plain = LoRAModule("p", base, rank=8, alpha=8)
    _randomise_up([lora])
    plain.load_state_dict(lora.state_dict())
    x = torch.randn(4, 16)

    lora.eval()
    torch.testing.assert_close(lora(x), plain(x))
    lora.train()
    base.eval()  # the model is in eval (sampling): no dropout either
    torch.testing.assert_close(lora(x), plain(x))
    base.train()
    outputs = [lora(x) for _ in range(5)]
    assert any(not torch.allclose(o, plain(x)) for o in outputs)


def test_rank_dropout_is_rescaled():
    torch.manual_seed(0)
    base = nn.Linear(32, 32, bias=False)
    nn.init.zeros_(base.weight)
    lora = LoRAModule("t", base, rank=32, alpha=32, rank_dropout=0.5)
    _randomise_up([lora])
    x = torch.randn(1, 32).expand(4000, 32)
    mean_delta = lora(x).mean(0)
    lora.eval()
    torch.testing.assert_close(mean_delta, lora(x[:1])[0], atol=0.15, rtol=0.1)


# ---------------------------------------------------------------------------- tiny models


def _unet_inputs(unet, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    cfg = unet.config
    kwargs = {
        "sample": torch.randn(1, cfg.in_channels, 8, 8, generator=gen),
        "timestep": torch.tensor([500]),
        "encoder_hidden_states": torch.randn(1, 16, cfg.cross_attention_dim, generator=gen),
    }
    if cfg.addition_embed_type == "text_time":
        text_dim = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        kwargs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(1, text_dim, generator=gen),
            "time_ids": torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]]),
        }
    return kwargs


@torch.no_grad()
def _outputs(pipe, unet_inputs, ids):
    encoders = [e for e in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if e is not None]
    return [pipe.unet(**unet_inputs).sample] + [e(ids).last_hidden_state for e in encoders]


def _load(arch_folder, arch):
    cls = StableDiffusionXLPipeline if arch == "sdxl" else StableDiffusionPipeline
    return cls.from_pretrained(arch_folder)


def test_new_lora_leaves_the_model_unchanged(tiny_model):
    pipe = _load(tiny_model("sd15"), "sd1")
    inputs, ids = _unet_inputs(pipe.unet), torch.randint(0, 1000, (1, 16))
    before = _outputs(pipe, inputs, ids)
    net = LoRANetwork(pipe.unet, [pipe.text_encoder], arch="sd1", rank=4, alpha=1, conv_rank=4, conv_alpha=1)
    net.apply_to()
    for a, b in zip(before, _outputs(pipe, inputs, ids), strict=True):
        assert torch.equal(a, b)
    # module paths (hence diffusers / Kohya names) and the model's own state dict are untouched
    assert "down_blocks.0.attentions.0.proj_in.weight" in pipe.unet.state_dict()
    assert not any("lora" in k for k in pipe.unet.state_dict())


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_saved_file_loads_in_diffusers_with_the_same_effect(tiny_model, tmp_path, arch):
    folder = tiny_model("sdxl" if arch == "sdxl" else "sd15")
    ours, theirs = _load(folder, arch), _load(folder, arch)
    encoders = [ours.text_encoder] + ([ours.text_encoder_2] if arch == "sdxl" else [])
    inputs, ids = (
        _unet_inputs(ours.unet),
        torch.randint(0, 1000, (1, 16), generator=torch.Generator().manual_seed(2)),
    )
    base = _outputs(ours, inputs, ids)

    net = LoRANetwork(ours.unet, encoders, arch=arch, rank=4, alpha=2, conv_rank=2, conv_alpha=1)
    net.apply_to()
    _randomise_up(net.loras, std=0.5)
    ours_out = _outputs(ours, inputs, ids)

    state = net.kohya_state_dict()
    assert all(k.startswith(KOHYA_PREFIXES) for k in state)
    assert all(state[k].dim() == 0 for k in state if k.endswith(".alpha"))
    path = save_lora(
        tmp_path / "lora.safetensors", state, {"ss_network_module": "networks.lora"}, dtype=torch.float32
    )
    theirs.load_lora_weights(str(path))
    theirs_out = _outputs(theirs, inputs, ids)

    for b, o, t in zip(base, ours_out, theirs_out, strict=True):
        assert not torch.allclose(b, o, atol=1e-3)  # the LoRA does something ...
        torch.testing.assert_close(t, o, atol=2e-4, rtol=1e-3)  # ... and diffusers does the same


def test_load_kohya_weights_continues_and_rejects_other_shapes(tiny_model, tmp_path):
    pipe = _load(tiny_model("sd15"), "sd1")
    inputs = _unet_inputs(pipe.unet)
    net = LoRANetwork(pipe.unet, [pipe.text_encoder], arch="sd1", rank=4, alpha=2)
    net.apply_to()
    _randomise_up(net.loras)
    trained = pipe.unet(**inputs).sample.detach()
    path = save_lora(tmp_path / "a.safetensors", net.kohya_state_dict(), {}, dtype=torch.float32)
    net.restore()

    fresh = LoRANetwork(pipe.unet, [pipe.text_encoder], arch="sd1", rank=4, alpha=1)
    fresh.load_kohya_weights(path)
    fresh.apply_to()
    assert fresh.loras[0].scale == 0.5  # alpha comes from the file
    torch.testing.assert_close(pipe.unet(**inputs).sample, trained)
    fresh.restore()

    with pytest.raises(ValueError, match="shape"):
        LoRANetwork(pipe.unet, [pipe.text_encoder], arch="sd1", rank=8, alpha=1).load_kohya_weights(path)
    with pytest.raises(ValueError, match="unknown keys"):
        LoRANetwork(pipe.unet, [], arch="sd1", rank=4, alpha=1, train_text_encoder=False).load_kohya_weights(
            path
        )


def test_param_groups_and_multiplier(tiny_model):
    pipe = _load(tiny_model("sd15"), "sd1")
    inputs = _unet_inputs(pipe.unet)
    base = pipe.unet(**inputs).sample.detach()
    net = LoRANetwork(pipe.unet, [pipe.text_encoder], arch="sd1", rank=4, alpha=4)
    net.apply_to()
    groups = net.param_groups(unet_lr=1e-4, text_encoder_lr=5e-5)
    assert [(g["name"], g["lr"]) for g in groups] == [("text_encoder", 5e-5), ("unet", 1e-4)]
    groups = net.param_groups(unet_lr=1e-4, text_encoder_lr=0)
    assert [g["name"] for g in groups] == ["unet"]
    assert not any(p.requires_grad for lora in net.te_loras for p in lora.parameters())

    _randomise_up(net.loras)
    full = pipe.unet(**inputs).sample.detach()
    net.set_multiplier(0.0)
    torch.testing.assert_close(pipe.unet(**inputs).sample, base)
    net.set_multiplier(1.0)
    torch.testing.assert_close(pipe.unet(**inputs).sample, full)
