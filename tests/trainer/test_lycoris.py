"""LyCORIS types through lycoris-lora: Kohya names, the options, and files other tools load.

"Other tools" here are lycoris' own loader (what A1111 / Forge / ComfyUI implement for
these keys) and diffusers (which loads the LoCon keys): the file they load must change
the model exactly as our network did during training. The types the Kohya GUI's list
added later are in test_lycoris_new_types.py.
"""

import json

import pytest
import torch

from tests.helpers import (
    REQUIRED,
    forward,
    forward_with_lycoris_loader,
    make_toy_dataset,
    network,
    write_preset,
)
from trainer.config import TrainingConfig
from trainer.network.build import kohya_network_args
from trainer.network.lora_file import save_lora
from trainer.network.param_groups import LoRAPlus, build_param_groups

TYPES = ["LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr", "LyCORIS/iA3"]
KEYS = {
    "LyCORIS/LoCon": {"lora_down.weight", "lora_up.weight", "alpha"},
    "LyCORIS/LoHa": {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "alpha"},
    "LyCORIS/LoKr": {"lokr_w1", "alpha"},
    "LyCORIS/iA3": {"weight", "on_input"},
}


def suffixes(net) -> set[str]:
    return {k.split(".", 1)[1] for k in net.kohya_state_dict()}


def forward_with(models, net) -> tuple[torch.Tensor, torch.Tensor]:
    """`forward` with the network applied (then removed)."""
    net.apply_to()
    try:
        return forward(models)
    finally:
        net.restore()


@torch.no_grad()
def trained_like(net) -> None:
    """Random non-zero weights everywhere, as after some training."""
    gen = torch.Generator().manual_seed(1)
    for p in net.parameters():
        p.add_(torch.randn(p.shape, generator=gen) * 0.05)


@pytest.mark.parametrize("lora_type", TYPES)
def test_each_type_has_kohya_names_and_its_algorithms_keys(models, lora_type):
    net = network(models, lora_type)
    keys = net.kohya_state_dict()
    names = {k.split(".", 1)[0] for k in keys}
    assert KEYS[lora_type] <= suffixes(net)
    assert all(n.startswith(("lora_unet_", "lora_te_")) for n in names)
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj" in names  # A1111's spelling
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q" in names
    assert "lora_unet_down_blocks_0_resnets_0_conv1" in names  # the 'full' preset: convolutions too


@pytest.mark.parametrize(
    "lora_type,options",
    [
        ("LyCORIS/LoCon", {}),
        ("LyCORIS/LoCon", {"dora_wd": True}),
        ("LyCORIS/LoHa", {}),
        # lycoris' loader guesses a LoKr factor from the shapes: it cannot for the 4-channel conv_in
        # at conv rank 2 (A1111 / ComfyUI read w1 and w2 as they are), so conv rank 4 here.
        ("LyCORIS/LoKr", {"conv_dim": 4}),
        ("LyCORIS/iA3", {}),
    ],
)
def test_the_saved_file_reloads_through_lycoris_own_loader_with_the_same_effect(
    models, lora_type, options, tmp_path
):
    base = forward(models)
    net = network(models, lora_type, **options)
    trained_like(net)
    ours = forward_with(models, net)
    assert not torch.allclose(ours[1], base[1])  # the LoRA does change the model
    path = save_lora(tmp_path / "ly.safetensors", net.kohya_state_dict(), {}, dtype=torch.float32)
    theirs = forward_with_lycoris_loader(models, path, len(net.loras), ia3=lora_type == "LyCORIS/iA3")
    torch.testing.assert_close(theirs[0], ours[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(theirs[1], ours[1], rtol=1e-4, atol=1e-5)


def test_a_locon_file_loads_in_diffusers_with_the_same_effect(models, tiny_model, tmp_path):
    from diffusers import StableDiffusionPipeline

    net = network(models, "LyCORIS/LoCon")
    trained_like(net)
    ours = forward_with(models, net)
    path = save_lora(tmp_path / "locon.safetensors", net.kohya_state_dict(), {}, dtype=torch.float32)
    pipe = StableDiffusionPipeline.from_pretrained(
        str(tiny_model("sd15")), safety_checker=None, requires_safety_checker=False
    )
    pipe.load_lora_weights(str(path))
    theirs = forward(models, pipe.text_encoder, pipe.unet)
    torch.testing.assert_close(theirs[0], ours[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(theirs[1], ours[1], rtol=1e-4, atol=1e-5)


def test_the_lycoris_options_change_what_is_trained(models):
    plain = suffixes(network(models, "LyCORIS/LoCon"))
    assert "dora_scale" in suffixes(network(models, "LyCORIS/LoCon", dora_wd=True)) - plain
    assert "lora_mid.weight" in suffixes(network(models, "LyCORIS/LoCon", use_tucker=True)) - plain
    assert "w_norm" in suffixes(network(models, "LyCORIS/LoCon", train_norm=True)) - plain
    scalar = network(models, "LyCORIS/LoCon", use_scalar=True)
    assert any(name.endswith("scalar") for name, _ in scalar.named_parameters())
    lokr = network(models, "LyCORIS/LoKr").kohya_state_dict()
    both = network(models, "LyCORIS/LoKr", decompose_both=True).kohya_state_dict()
    assert any(k.endswith("lokr_w1_a") for k in both) and not any(k.endswith("lokr_w1_a") for k in lokr)
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_2.lokr_w1"
    factor4 = network(models, "LyCORIS/LoKr", factor=4).kohya_state_dict()
    assert lokr[name].shape != factor4[name].shape and 4 in factor4[name].shape
    attn_mlp = network(models, "LyCORIS/LoCon", LyCORIS_preset="attn-mlp")
    assert not any("resnets" in lora.lora_name for lora in attn_mlp.unet_loras)
    assert len(attn_mlp.unet_loras) < len(network(models, "LyCORIS/LoCon").unet_loras)


def test_every_offered_preset_finds_its_layers(models):
    from trainer.config.settings.network import LYCORIS_PRESETS

    for preset in LYCORIS_PRESETS:
        net = network(models, "LyCORIS/LoCon", LyCORIS_preset=preset)
        assert net.unet_loras, preset
        assert bool(net.te_loras) == (not preset.startswith("unet-")), preset


def test_a_preset_toml_file_chooses_the_layers(models, tmp_path):
    from trainer.config import config_from_dict
    from trainer.config.validate import ConfigError
    from trainer.run.preflight_options import option_preflight

    preset = tmp_path / "attn_only.toml"
    preset.write_text(
        'enable_conv = false\nunet_target_module = ["Transformer2DModel"]\n'
        'text_encoder_target_module = ["CLIPAttention"]\n',
        encoding="utf-8",
    )
    net = network(models, "LyCORIS/LoCon", LyCORIS_preset=str(preset))
    names = [lora.lora_name for lora in net.unet_loras]
    assert names and all("attentions" in n for n in names)  # no resnets, no convolutions
    assert net.te_loras and all("self_attn" in lora.lora_name for lora in net.te_loras)
    base = {**REQUIRED, "output_dir": str(tmp_path), "LoRA_type": "LyCORIS/LoCon"}
    bad = tmp_path / "bad.toml"
    bad.write_text('unet_target_modul = ["Transformer2DModel"]\n', encoding="utf-8")
    cfg, _ = config_from_dict({**base, "LyCORIS_preset": str(bad)})
    [problem] = [p for p in option_preflight(cfg, cuda=False) if p.key == "LyCORIS_preset"]
    assert "bad.toml" in problem.message and "unet_target_modul" in problem.message
    with pytest.raises(ConfigError) as info:
        config_from_dict({**base, "LyCORIS_preset": "attn"})
    assert "neither a preset name" in info.value.by_key()["LyCORIS_preset"][0]


def test_lycoris_modules_learn_with_loraplus_and_the_file_says_lycoris(models):
    net = network(models, "LyCORIS/LoCon")
    groups = build_param_groups(net, unet_lr=1e-3, text_encoder_lr=1e-3, loraplus=LoRAPlus(ratio=8))
    assert {g["lr"] for g in groups} == {1e-3, 8e-3}
    optimizer = torch.optim.AdamW(groups)
    before = {k: v.clone() for k, v in net.kohya_state_dict().items() if k.endswith("lora_up.weight")}
    net.apply_to()
    try:
        ids = models.tokenizers[0](["a"], padding="max_length", max_length=77, return_tensors="pt").input_ids
        hidden = models.text_encoders[0](ids).last_hidden_state
        out = models.unet(torch.randn(1, 4, 8, 8), torch.tensor([10]), hidden).sample
        out.pow(2).mean().backward()
        optimizer.step()
    finally:
        net.restore()
    after = net.kohya_state_dict()
    assert sum(not torch.equal(before[k], after[k]) for k in before) > len(before) // 2
    module, args = kohya_network_args(TrainingConfig(LoRA_type="LyCORIS/LoKr", factor=8, dora_wd=True))
    assert module == "lycoris.kohya"
    assert (args["algo"], args["factor"], args["dora_wd"], args["preset"]) == ("lokr", "8", "True", "full")
    json.dumps(args)


@pytest.mark.slow
def test_a_short_lycoris_run_saves_a_lokr_file(tiny_model, tmp_path):
    from safetensors import safe_open

    from trainer.__main__ import main

    data = make_toy_dataset(tmp_path / "data", n=2)
    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        data,
        epoch=1,
        train_batch_size=1,
        LoRA_type="LyCORIS/LoKr",
        conv_dim=2,
        conv_alpha=1,
        factor=4,
    )
    assert main(["--config", str(preset)]) == 0
    with safe_open(tmp_path / "out" / "toy.safetensors", "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert any(k.endswith(".lokr_w1") for k in keys)
    assert meta["ss_network_module"] == "lycoris.kohya"
    assert json.loads(meta["ss_network_args"])["algo"] == "lokr"
