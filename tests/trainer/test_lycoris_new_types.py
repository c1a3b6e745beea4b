"""The LyCORIS types added with the Kohya GUI's list (BOFT, Diag-OFT, DyLoRA, GLoRA, Native
Fine-Tuning) and their options: each trains, and its file loads back with the same effect,
in a fresh network and in lycoris' own loader."""

import math
import random

import pytest
import torch

from tests.helpers import REQUIRED, forward, forward_with_lycoris_loader, network
from trainer.config import TrainingConfig
from trainer.network.build import kohya_network_args
from trainer.network.lora_file import save_lora
from trainer.network.param_groups import build_param_groups

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
            {**REQUIRED, "LoRA_type": "LyCORIS/DyLoRA", "network_dim": 6, "conv_dim": 4, "unit": 4}
        )
    assert "6 is not a multiple of the DyLoRA unit 4" in info.value.by_key()["network_dim"][0]
    assert "conv_dim" not in info.value.by_key()
