"""Ranks per U-Net block (block_dims ...), ranks from a LoRA file (dim_from_weights), and
Kohya presets carrying these keys and the LyCORIS options."""

import json

import pytest
import torch
from safetensors import safe_open

from tests.helpers import REQUIRED, make_toy_dataset, write_preset
from trainer.config import ConfigError, TrainingConfig, config_from_dict
from trainer.config.rules.blocks import block_index, parse_block_values
from trainer.network.build import build_network, kohya_network_args
from trainer.network.lora_file import save_lora

# IN00-IN11 off, MID 3, OUT00-OUT11 2,2,2,4,4,4,6,6,6,8,8,8 (the tiny U-Net uses OUT00-OUT08).
DIMS = ",".join(["0"] * 12 + ["3"] + ["2"] * 3 + ["4"] * 3 + ["6"] * 3 + ["8"] * 3)
ALPHAS = ",".join(["1"] * 12 + ["1.5"] + ["1"] * 6 + ["3"] * 6)


def build(models, **settings):
    cfg = TrainingConfig(**{"network_dim": 4, "network_alpha": 2, **settings})
    return build_network(
        cfg, models.unet, models.text_encoders, arch=models.arch, train_unet=True, train_text_encoder=True
    )


def file_ranks(path) -> dict[str, tuple[int, float]]:
    """{module: (rank, alpha)} as read back from the saved .safetensors."""
    with safe_open(str(path), "pt") as f:
        keys = list(f.keys())
        return {
            k.split(".")[0]: (f.get_tensor(k).shape[0], float(f.get_tensor(k.split(".")[0] + ".alpha")))
            for k in keys
            if k.endswith(".lora_down.weight")
        }


@pytest.mark.parametrize(
    "name,arch,index",
    [
        ("lora_unet_down_blocks_0_attentions_0_proj_in", "sd1", 1),  # IN01
        ("lora_unet_down_blocks_0_downsamplers_0_conv", "sd1", 3),  # IN03
        ("lora_unet_mid_block_attentions_0_proj_in", "sd1", 12),  # MID
        ("lora_unet_up_blocks_0_resnets_0_conv1", "sd1", 13),  # OUT00
        ("lora_unet_up_blocks_3_attentions_2_proj_out", "sd1", 24),  # OUT11
        ("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q", "sdxl", 5),  # IN04
        ("lora_unet_middle_block_0_in_layers_2", "sdxl", 10),
        ("lora_unet_middle_block_2_out_layers_3", "sdxl", 12),
        ("lora_unet_output_blocks_8_1_proj_out", "sdxl", 21),  # OUT08
        ("lora_te_text_model_encoder_layers_0_mlp_fc1", "sd1", None),
    ],
)
def test_each_module_has_its_place_in_kohyas_block_list(name, arch, index):
    assert block_index(name, arch) == index


def test_block_values_name_the_count_the_model_needs_and_the_bad_value():
    assert parse_block_values("", "sd1", whole=True) is None
    assert parse_block_values(DIMS, "sd1", whole=True)[12] == 3
    with pytest.raises(ValueError, match="has 12 values; SD1.x/SD2.x needs 25"):
        parse_block_values(",".join(["4"] * 12), "sd1", whole=True)
    with pytest.raises(ValueError, match="SDXL needs 23"):
        parse_block_values(DIMS, "sdxl", whole=True)
    with pytest.raises(ValueError, match="'2.5' is not allowed; the values must be whole numbers"):
        parse_block_values(",".join(["2.5"] * 25), "sd1", whole=True)
    with pytest.raises(ValueError, match="'x' is not a number"):
        parse_block_values(",".join(["1"] * 24 + ["x"]), "sd1", whole=False)


def test_zero_blocks_get_no_module_and_the_file_has_each_blocks_rank_and_alpha(models, tmp_path):
    net = build(models, block_dims=DIMS, block_alphas=ALPHAS)
    dims = [int(v) for v in DIMS.split(",")]
    alphas = [float(v) for v in ALPHAS.split(",")]
    assert net.unet_loras and not any("down_blocks" in m.lora_name for m in net.unet_loras)
    assert any("mid_block" in m.lora_name for m in net.unet_loras)
    path = save_lora(tmp_path / "blocks.safetensors", net.kohya_state_dict(), {}, dtype=torch.float32)
    ranks = file_ranks(path)
    assert len(ranks) == len(net.loras)
    for name, (rank, alpha) in ranks.items():
        if name.startswith("lora_te_"):
            assert (rank, alpha) == (4, 2.0)  # the text encoder keeps the network rank
        else:
            i = block_index(name, "sd1")
            assert (rank, alpha) == (dims[i], alphas[i]), name
    assert {r for n, (r, _) in ranks.items() if n.startswith("lora_unet_")} == {
        3,
        4,
        6,
    }  # OUT00-OUT02 have no attention


def test_conv_block_dims_give_standard_lora_convolutions_and_zero_lr_blocks_go(models):
    conv = ",".join(["1"] * 12 + ["2"] + ["3"] * 12)
    net = build(models, block_dims=",".join(["4"] * 25), conv_block_dims=conv)
    conv1 = {m.lora_name: m for m in net.unet_loras if m.lora_name.endswith("_conv1")}
    assert conv1 and all(
        m.rank == (2 if "mid_block" in n else 1 if "down_" in n else 3) for n, m in conv1.items()
    )
    assert all(float(m.alpha) == 1.0 for m in conv1.values())  # Standard: conv alpha 1, as Kohya
    plain = build(models)
    assert not any(m.lora_name.endswith("_conv1") for m in plain.unet_loras)
    # A block whose learning-rate weight is 0 gets no module (sd-scripts), with or without block_dims.
    frozen = build(models, down_lr_weight=",".join(["0"] * 12))
    assert not any("down_blocks" in m.lora_name for m in frozen.unet_loras)
    assert len(frozen.unet_loras) < len(plain.unet_loras)


def test_dim_from_weights_takes_every_modules_rank_and_alpha_from_the_file(models, tmp_path):
    source = build(
        models, LoRA_type="Kohya LoCon", conv_dim=2, conv_alpha=1, block_dims=DIMS, block_alphas=ALPHAS
    )
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.01)
    path = save_lora(tmp_path / "src.safetensors", source.kohya_state_dict(), {}, dtype=torch.float32)
    net = build(models, network_dim=16, network_alpha=16, network_weights=str(path), dim_from_weights=True)
    assert {m.lora_name: (m.rank, float(m.alpha)) for m in net.loras} == file_ranks(path)
    net.load_kohya_weights(path)  # what the run does next: it fits exactly
    again = save_lora(tmp_path / "again.safetensors", net.kohya_state_dict(), {}, dtype=torch.float32)
    assert file_ranks(again) == file_ranks(path)


def test_bad_block_settings_and_dim_from_weights_are_named():
    def problems(**values):
        with pytest.raises(ConfigError) as info:
            config_from_dict({**REQUIRED, **values})
        return info.value.by_key()

    bad = problems(block_dims=",".join(["4"] * 24), conv_block_alphas="1,2")
    assert "has 24 values; SD1.x/SD2.x needs 25" in bad["block_dims"][0]
    assert "'1,2' has 2 values" in bad["conv_block_alphas"][0]
    assert "SDXL needs 23" in problems(sdxl=True, block_dims=DIMS)["block_dims"][0]
    assert "Standard or Kohya LoCon" in problems(LoRA_type="LyCORIS/LoHa", block_dims=DIMS)["block_dims"][0]
    assert "network_weights" in problems(dim_from_weights=True)["dim_from_weights"][0]
    _, warnings = config_from_dict({**REQUIRED, "block_alphas": ALPHAS})
    assert any("block_alphas is not used" in w for w in warnings)


def test_a_kohya_preset_with_these_keys_loads_with_its_values():
    raw = {
        **REQUIRED,
        "LoRA_type": "Standard",
        "block_dims": DIMS,
        "block_alphas": ALPHAS,
        "conv_block_dims": "",
        "conv_block_alphas": "",
        "dim_from_weights": False,
        "use_cp": True,
        "train_on_input": True,
        "rank_dropout_scale": False,
        "bypass_mode": False,
        "constrain": 0.0,
        "rescaled": False,
        "unit": 1,
    }
    cfg, warnings = config_from_dict(raw)
    assert (cfg.block_dims, cfg.block_alphas, cfg.use_cp, cfg.train_on_input) == (DIMS, ALPHAS, True, True)
    assert not any("not used by this trainer" in w for w in warnings), warnings
    assert any("use_cp only apply to the LyCORIS" in w for w in warnings)  # Standard ignores it
    cfg, warnings = config_from_dict(
        {
            **raw,
            "LoRA_type": "LyCORIS/Diag-OFT",
            "block_dims": "",
            "block_alphas": "",
            "use_cp": False,
            "constrain": 0.001,
        }
    )
    assert cfg.constrain == 0.001 and not any("not used" in w for w in warnings), warnings


def test_block_settings_are_written_to_the_network_args_as_kohya_does():
    _, args = kohya_network_args(TrainingConfig(block_dims=DIMS, block_alphas=ALPHAS))
    assert args["block_dims"] == DIMS and args["block_alphas"] == ALPHAS
    assert "conv_block_dims" not in args
    json.dumps(args)


@pytest.mark.slow
def test_a_short_run_with_block_dims_saves_those_ranks(tiny_model, tmp_path):
    from trainer.__main__ import main

    data = make_toy_dataset(tmp_path / "data", n=2)
    preset = write_preset(
        tmp_path, tiny_model("sd15"), data, epoch=1, train_batch_size=1, block_dims=DIMS, block_alphas=ALPHAS
    )
    assert main(["--config", str(preset)]) == 0
    path = tmp_path / "out" / "toy.safetensors"
    ranks = file_ranks(path)
    assert {r for n, (r, _) in ranks.items() if n.startswith("lora_unet_")} == {
        3,
        4,
        6,
    }  # OUT00-OUT02 have no attention
    assert not any("down_blocks" in n for n in ranks)
    with safe_open(str(path), "pt") as f:
        args = json.loads(f.metadata()["ss_network_args"])
    assert args["block_dims"] == DIMS and args["block_alphas"] == ALPHAS
