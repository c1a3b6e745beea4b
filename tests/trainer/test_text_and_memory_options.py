"""max_token_length past 75 tokens, and the memory switches (mem_eff_attn, full_bf16/fp16, fp8_base)."""

from types import SimpleNamespace

import pytest
import torch

from tests.helpers import REQUIRED
from trainer.config import ConfigError, TrainingConfig, config_from_dict
from trainer.run.options import allow_fp16_gradients, apply_attention_and_fp8, lora_dtype


@torch.no_grad()
def test_a_long_caption_changes_the_conditioning_past_token_75_only_with_a_longer_limit(models):
    from trainer.text.conditioning import TextConditioner

    shared = ["red"] * 90  # the captions differ only from token 91 on
    captions = [" ".join(shared + ["cat"] * 20), " ".join(shared + ["dog"] * 20)]
    short = TextConditioner(models.tokenizers, models.text_encoders, arch="sd1", max_token_length=75)
    a, b = short.encode(captions)[0]
    assert a.shape[0] == 77 and torch.equal(a, b)  # cut at 75 tokens: the difference is lost
    long = TextConditioner(models.tokenizers, models.text_encoders, arch="sd1", max_token_length=150)
    a, b = long.encode(captions)[0]
    assert a.shape[0] == 152  # BOS + 2 x 75 + EOS
    assert torch.equal(a[:76], b[:76])  # the first chunk saw the same 75 tokens
    assert (a[91:] - b[91:]).abs().max() > 1e-4  # the second chunk sees cat vs dog


def test_max_token_length_loads_from_a_kohya_string():
    cfg, _ = config_from_dict({**REQUIRED, "max_token_length": "225"})
    assert cfg.max_token_length == 225


@torch.no_grad()
def test_mem_eff_attn_holds_sdpa_to_its_efficient_kernels_and_gives_the_same_prediction(models, tiny_model):
    """Not sliced attention: in training autograd keeps every slice's probabilities, which
    costs more memory and time, the opposite of what mem_eff_attn promises."""
    from trainer.models import load_models

    unet = models.unet
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    hidden = torch.randn(1, 77, unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    before = unet(x, torch.tensor([10]), hidden).sample
    fresh = load_models(
        str(tiny_model("sd15")),
        v2=False,
        v_parameterization=False,
        sdxl=False,
        dtype=torch.float32,
        vae_path=None,
    ).unet
    apply_attention_and_fp8(TrainingConfig(mem_eff_attn=True), fresh)
    kinds = {type(p).__name__ for p in fresh.attn_processors.values()}
    assert kinds == {"EfficientSDPAProcessor"}
    with_xformers = load_models(
        str(tiny_model("sd15")),
        v2=False,
        v_parameterization=False,
        sdxl=False,
        dtype=torch.float32,
        vae_path=None,
    ).unet
    apply_attention_and_fp8(TrainingConfig(mem_eff_attn=True, xformers="xformers"), with_xformers)
    assert "EfficientSDPAProcessor" not in {type(p).__name__ for p in with_xformers.attn_processors.values()}
    torch.testing.assert_close(fresh(x, torch.tensor([10]), hidden).sample, before, rtol=1e-4, atol=1e-5)


def test_full_bf16_keeps_the_lora_in_bf16_and_it_still_learns(models):
    from trainer.network import LoRANetwork
    from trainer.network.param_groups import build_param_groups

    cfg = TrainingConfig(mixed_precision="bf16", full_bf16=True)
    assert lora_dtype(cfg) == torch.bfloat16 and lora_dtype(TrainingConfig()) is None
    net = LoRANetwork(
        models.unet, models.text_encoders, arch="sd1", rank=4, alpha=4, train_text_encoder=False
    )
    net.apply_to()
    try:
        net.to(dtype=lora_dtype(cfg))
        assert {p.dtype for p in net.parameters()} == {torch.bfloat16}
        optimizer = torch.optim.AdamW(build_param_groups(net, unet_lr=1e-2, text_encoder_lr=0))
        before = {k: v.clone() for k, v in net.state_dict().items() if "lora_up" in k}
        hidden = torch.randn(1, 77, models.unet.config.cross_attention_dim)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = models.unet(torch.randn(1, 4, 8, 8), torch.tensor([10]), hidden).sample
        out.float().pow(2).mean().backward()
        optimizer.step()
        after = net.state_dict()
        assert all(after[k].dtype == torch.bfloat16 for k in before)
        assert sum(not torch.equal(before[k], after[k]) for k in before) > len(before) // 2
    finally:
        net.restore()


@pytest.mark.parametrize("key,precision", [("full_bf16", "fp16"), ("full_fp16", "bf16"), ("full_fp16", "no")])
def test_full_precision_switches_refuse_the_mixed_precision_they_cannot_use(key, precision):
    with pytest.raises(ConfigError) as info:
        config_from_dict({**REQUIRED, key: True, "mixed_precision": precision})
    assert key in info.value.by_key()


def test_full_fp16_lets_the_grad_scaler_unscale_fp16_gradients():
    seen = []
    scaler = SimpleNamespace(_unscale_grads_=lambda opt, inv, found, allow_fp16: seen.append(allow_fp16))
    allow_fp16_gradients(SimpleNamespace(scaler=scaler))
    scaler._unscale_grads_(None, None, None, False)
    assert seen == [True]
    allow_fp16_gradients(SimpleNamespace(scaler=None))  # no scaler (bf16, CPU): nothing to do


def test_fp8_base_needs_mixed_precision_and_a_gpu(tmp_path):
    with pytest.raises(ConfigError) as info:
        config_from_dict({**REQUIRED, "fp8_base": True, "mixed_precision": "no"})
    assert "fp16" in info.value.by_key()["fp8_base"][0]
    if torch.cuda.is_available():
        pytest.skip("the CPU message is checked on machines without CUDA")
    from trainer.run.preflight import run_preflight

    problems, _ = run_preflight(
        TrainingConfig(fp8_base=True, mixed_precision="bf16", output_dir=str(tmp_path))
    )
    assert any(p.key == "fp8_base" and "NVIDIA GPU" in p.message for p in problems)


@pytest.mark.gpu
def test_fp8_base_stores_the_unet_in_fp8_on_a_gpu(models):
    import copy

    unet = copy.deepcopy(models.unet).cuda()
    apply_attention_and_fp8(TrainingConfig(fp8_base=True, mixed_precision="bf16"), unet)
    assert next(unet.parameters()).dtype == torch.float8_e4m3fn
    hidden = torch.randn(1, 77, unet.config.cross_attention_dim, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = unet(torch.randn(1, 4, 8, 8, device="cuda"), torch.tensor([10], device="cuda"), hidden).sample
    assert torch.isfinite(out).all()
