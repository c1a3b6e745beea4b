"""LyCORIS types through lycoris-lora: Kohya names, the options, and files other tools load.

"Other tools" here are lycoris' own loader (what A1111 / Forge / ComfyUI implement for
these keys) and diffusers (which loads the LoCon keys): the file they load must change
the model exactly as our network did during training.
"""

import json
import math
import random

import pytest
import torch
from torch import nn

from trainer.config import TrainingConfig
from trainer.network.build import build_network, kohya_network_args
from trainer.network.lora_file import save_lora
from trainer.network.param_groups import LoRAPlus, build_param_groups

TYPES = ["LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr", "LyCORIS/iA3"]
KEYS = {
    "LyCORIS/LoCon": {"lora_down.weight", "lora_up.weight", "alpha"},
    "LyCORIS/LoHa": {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "alpha"},
    "LyCORIS/LoKr": {"lokr_w1", "alpha"},
    "LyCORIS/iA3": {"weight", "on_input"},
}


@pytest.fixture(scope="module")
def models(tiny_model):
    from trainer.models import load_models

    return load_models(
        str(tiny_model("sd15")),
        v2=False,
        v_parameterization=False,
        sdxl=False,
        dtype=torch.float32,
        vae_path=None,
    )


def network(models, lora_type: str, **options):
    options = {"network_dim": 4, "network_alpha": 2, "conv_dim": 2, "conv_alpha": 1, **options}
    cfg = TrainingConfig(LoRA_type=lora_type, **options)
    return build_network(
        cfg, models.unet, models.text_encoders, arch=models.arch, train_unet=True, train_text_encoder=True
    )


def suffixes(net) -> set[str]:
    return {k.split(".", 1)[1] for k in net.kohya_state_dict()}


@torch.no_grad()
def forward(models, text_encoder=None, unet=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Text-encoder hidden states and the U-Net's prediction for a fixed input."""
    text_encoder = text_encoder or models.text_encoders[0]
    unet = unet or models.unet
    ids = models.tokenizers[0](
        ["a red square"], padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    hidden = text_encoder(ids).last_hidden_state
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    return hidden, unet(x, torch.tensor([500]), hidden).sample


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


def ia3_modules_from_file(path, holder: nn.Module, unet: nn.Module) -> list:
    """iA3 modules read back with lycoris' IA3Module.make_module_from_state_dict.

    lycoris 4.1.3's generic loader hands that method the file's `on_input` too, which it
    does not take; the class method itself reads the weights (all `on_input` 0 here).
    """
    from lycoris.modules.ia3 import IA3Module
    from safetensors.torch import load_file

    sd = load_file(str(path))
    names = {k.split(".")[0] for k in sd}
    found = {}
    for prefix, root in (("lora_unet", unet), ("lora_te", holder)):
        for module_path, module in root.named_modules():
            name = f"{prefix}_{module_path}".replace(".", "_")
            if name in names:
                found[name] = module
    assert set(found) == names
    assert all(int(sd[f"{n}.on_input"]) == 0 for n in names)
    return [IA3Module.make_module_from_state_dict(n, m, sd[f"{n}.weight"]) for n, m in found.items()]


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


def forward_with_lycoris_loader(models, path, expected: int, ia3: bool = False):
    """The models' output with the file loaded by lycoris-lora's own loader (then removed)."""
    from lycoris.kohya import create_network_from_weights

    holder = nn.Module()  # the text encoder under 'text_model', as the A1111 / Kohya names spell it
    holder.text_model = models.text_encoders[0]
    if ia3:
        loras = ia3_modules_from_file(path, holder, models.unet)
    else:
        loaded, _ = create_network_from_weights(1.0, str(path), None, holder, models.unet)
        loras = loaded.unet_loras + loaded.text_encoder_loras
    assert len(loras) == expected
    for lora in loras:
        lora.apply_to()
    try:
        return forward(models)
    finally:
        for lora in reversed(loras):
            lora.restore()


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
    base = {
        "pretrained_model_name_or_path": "m",
        "train_data_dir": "d",
        "output_dir": str(tmp_path),
        "LoRA_type": "LyCORIS/LoCon",
    }
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

    from tests.trainer.test_train_e2e import make_toy_dataset, write_preset
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


# ---- the LyCORIS types added with the Kohya GUI's list, and their options ----------------------
NEW_TYPES = {
    "LyCORIS/BOFT": "oft_blocks",
    "LyCORIS/Diag-OFT": "oft_blocks",
    "LyCORIS/DyLoRA": "lora_up.weight",
    "LyCORIS/GLoRA": "a1.weight",
    "LyCORIS/Native Fine-Tuning": "diff",
}


def train_steps(models, net, steps: int = 3) -> list[float]:
    """A few AdamW steps that pull the U-Net's prediction to zero; the losses."""
    optimizer = torch.optim.AdamW(build_param_groups(net, unet_lr=1e-3, text_encoder_lr=1e-3))
    ids = models.tokenizers[0](["a"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        hidden = models.text_encoders[0](ids).last_hidden_state
        out = models.unet(torch.randn(1, 4, 8, 8, generator=gen), torch.tensor([10]), hidden).sample
        loss = out.pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("lora_type", list(NEW_TYPES))
def test_each_new_type_trains_and_its_file_loads_back_with_the_same_effect(models, lora_type, tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    net = network(models, lora_type)
    net.apply_to()
    try:
        before = forward(models)
        losses = train_steps(models, net)
        random.seed(0)  # DyLoRA picks a random rank block at each call, even in eval mode
        ours = forward(models)
        path = save_lora(tmp_path / "ly.safetensors", net.kohya_state_dict(), {}, dtype=torch.float32)
    finally:
        net.restore()
    assert all(math.isfinite(x) for x in losses)
    assert not torch.allclose(ours[1], before[1])  # it learned something
    saved = load_file(str(path))
    assert set(saved) == set(net.kohya_state_dict())  # every module, every tensor
    assert any(k.endswith("." + NEW_TYPES[lora_type]) for k in saved)
    assert all(torch.isfinite(v).all() for v in saved.values())
    again = network(models, lora_type)  # a fresh network, as a resumed run makes
    again.apply_to()
    try:
        again.load_kohya_weights(path)
        random.seed(0)
        theirs = forward(models)
    finally:
        again.restore()
    torch.testing.assert_close(theirs[1], ours[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "lora_type", ["LyCORIS/BOFT", "LyCORIS/Diag-OFT", "LyCORIS/GLoRA", "LyCORIS/Native Fine-Tuning"]
)
def test_lycoris_own_loader_reads_the_new_types(models, lora_type, tmp_path):
    net = network(models, lora_type)
    net.apply_to()
    try:
        train_steps(models, net, steps=2)
        net.eval()
        ours = forward(models)
        path = save_lora(tmp_path / "ly.safetensors", net.kohya_state_dict(), {}, dtype=torch.float32)
    finally:
        net.restore()
    theirs = forward_with_lycoris_loader(models, path, len(net.loras))
    torch.testing.assert_close(theirs[1], ours[1], rtol=1e-3, atol=1e-4)


def test_the_kohya_gui_options_reach_the_lycoris_modules(models):
    def unet_module(lora_type, **options):
        return network(models, lora_type, **options).unet_loras[0]

    assert unet_module("LyCORIS/LoCon", rank_dropout_scale=True).rank_dropout_scale is True
    assert unet_module("LyCORIS/LoHa", bypass_mode=True).bypass_mode is True

    def lokr_conv(**options):  # a 3x3 convolution's LoKr module
        net = network(models, "LyCORIS/LoKr", **options)
        return next(m for m in net.unet_loras if m.lora_name.endswith("resnets_0_conv1"))

    assert lokr_conv(use_cp=True).tucker and not lokr_conv().tucker  # lycoris: use_cp = use_tucker
    assert int(unet_module("LyCORIS/iA3", train_on_input=True).on_input) == 1
    assert int(unet_module("LyCORIS/iA3").on_input) == 0
    oft = unet_module("LyCORIS/Diag-OFT", constrain=1e-3, rescaled=True)
    assert oft.constraint > 0 and oft.rescaled and hasattr(oft, "rescale")
    assert unet_module("LyCORIS/DyLoRA", unit=2).block_size == 2
    # an option the type does not get from the Kohya GUI stays at lycoris' default
    assert unet_module("LyCORIS/DyLoRA", rank_dropout_scale=True).rank_dropout_scale is False
    _, args = kohya_network_args(TrainingConfig(LoRA_type="LyCORIS/Diag-OFT", constrain=0.5, rescaled=True))
    assert (args["algo"], args["constraint"], args["rescaled"]) == ("diag-oft", "0.5", "True")
    assert "factor" not in args and "dora_wd" not in args
    _, args = kohya_network_args(TrainingConfig(LoRA_type="LyCORIS/DyLoRA", unit=4))
    assert args["block_size"] == "4"
    _, args = kohya_network_args(TrainingConfig(LoRA_type="LyCORIS/LoKr", use_cp=True))
    assert args["use_cp"] == "True"


def test_dylora_needs_ranks_that_are_multiples_of_its_unit():
    from trainer.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError) as info:
        config_from_dict(
            {
                "pretrained_model_name_or_path": "m",
                "train_data_dir": "d",
                "output_dir": "o",
                "LoRA_type": "LyCORIS/DyLoRA",
                "network_dim": 6,
                "conv_dim": 4,
                "unit": 4,
            }
        )
    assert "6 is not a multiple of the DyLoRA unit 4" in info.value.by_key()["network_dim"][0]
    assert "conv_dim" not in info.value.by_key()
