"""LoRA+, block-wise learning rates, scale_weight_norms, the text-encoder stop, and one run."""

import json
import math

import pytest
import torch
from torch import nn

from tests.helpers import REQUIRED, make_toy_dataset, write_preset
from trainer.config import ConfigError, TrainingConfig, config_from_dict
from trainer.config.rules.blocks import BlockWeights, block_of, parse_block_weights
from trainer.network import LoRAModule
from trainer.network.build import kohya_network_args
from trainer.network.max_norm import apply_max_norm, delta_norm
from trainer.network.param_groups import LoRAPlus, build_param_groups
from trainer.run.options import StepHooks, text_encoder_stop_step

UNET_NAMES = [
    "lora_unet_down_blocks_0_attentions_0_proj_in",  # IN01
    "lora_unet_down_blocks_1_attentions_1_proj_out",  # IN05
    "lora_unet_mid_block_attentions_0_proj_in",  # mid
    "lora_unet_up_blocks_3_attentions_2_proj_out",
]  # OUT11


class ToyNet(nn.Module):
    """LoRA modules named like SD1.5's, each on its own small layer."""

    def __init__(self, unet_names=UNET_NAMES, conv: bool = False):
        super().__init__()
        torch.manual_seed(0)
        make = (lambda: nn.Conv2d(4, 6, 3, padding=1)) if conv else (lambda: nn.Linear(8, 6))
        self.bases = nn.ModuleList([make() for _ in range(len(unet_names) + 1)])
        self.bases.requires_grad_(False)
        self.te_loras = [LoRAModule("lora_te_text_model_encoder_layers_0_mlp_fc1", self.bases[0], 4, 2)]
        self.unet_loras = [LoRAModule(n, b, 4, 2) for n, b in zip(unet_names, self.bases[1:], strict=True)]
        for lora in self.loras:
            lora.apply_to()
            self.add_module(lora.lora_name, lora)

    @property
    def loras(self):
        return self.te_loras + self.unet_loras


def lr_of(groups, param) -> float:
    return next(g["lr"] for g in groups if any(p is param for p in g["params"]))


# ---- LoRA+ ---------------------------------------------------------------------------------
def test_loraplus_gives_the_up_weights_ratio_times_the_learning_rate():
    net = ToyNet()
    groups = build_param_groups(net, unet_lr=1e-4, text_encoder_lr=5e-5, loraplus=LoRAPlus(ratio=16))
    for lora in net.unet_loras:
        assert lr_of(groups, lora.lora_up.weight) == pytest.approx(16e-4)
        assert lr_of(groups, lora.lora_down.weight) == pytest.approx(1e-4)
    te = net.te_loras[0]
    assert lr_of(groups, te.lora_up.weight) == pytest.approx(16 * 5e-5)
    assert {g["name"] for g in groups} == {"text_encoder", "text_encoder plus", "unet", "unet plus"}


def test_part_specific_loraplus_ratios_win_over_the_general_one():
    net = ToyNet()
    groups = build_param_groups(
        net,
        unet_lr=1e-4,
        text_encoder_lr=1e-4,
        loraplus=LoRAPlus(ratio=16, unet_ratio=4, text_encoder_ratio=0),
    )
    assert lr_of(groups, net.unet_loras[0].lora_up.weight) == pytest.approx(4e-4)
    assert lr_of(groups, net.te_loras[0].lora_up.weight) == pytest.approx(16e-4)
    plain = build_param_groups(ToyNet(), unet_lr=1e-4, text_encoder_lr=1e-4)
    assert len(plain) == 2 and all(g["lr"] == 1e-4 for g in plain)


# ---- block-wise learning rates ----------------------------------------------------------------
def test_kohya_block_weight_formats():
    assert parse_block_weights("", 12) is None
    assert parse_block_weights("0,0.5,1", 12) == [0, 0.5, 1] + [1.0] * 9  # the rest stay 1
    sine = parse_block_weights("sine", 12)
    assert sine[0] == 0 and sine[-1] == pytest.approx(1) and sine == sorted(sine)
    assert parse_block_weights("cosine+0.5", 12)[0] == pytest.approx(1.5)
    assert parse_block_weights("linear", 12)[6] == pytest.approx(6 / 11)
    assert (
        parse_block_weights("reverse_linear", 9)[0] == 1 and parse_block_weights("zeros+.25", 9) == [0.25] * 9
    )
    for bad in ("1," * 13, "sine+x", "fast", "-1"):
        with pytest.raises(ValueError):
            parse_block_weights(bad, 12)


@pytest.mark.parametrize(
    "name,where",
    [
        ("lora_unet_down_blocks_0_attentions_0_proj_in", ("down", 1)),
        ("lora_unet_down_blocks_0_downsamplers_0_conv", ("down", 3)),
        ("lora_unet_down_blocks_2_resnets_1_conv1", ("down", 8)),
        ("lora_unet_mid_block_attentions_0_proj_in", ("mid", 0)),
        ("lora_unet_up_blocks_0_resnets_2_conv2", ("up", 2)),
        ("lora_unet_up_blocks_3_attentions_2_proj_out", ("up", 11)),
        ("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q", ("down", 4)),  # SDXL (SGM names)
        ("lora_unet_output_blocks_8_1_proj_out", ("up", 8)),
        ("lora_unet_middle_block_1_proj_in", ("mid", 0)),
        ("lora_te_text_model_encoder_layers_0_mlp_fc1", None),
    ],
)
def test_each_lora_module_belongs_to_its_kohya_block(name, where):
    assert block_of(name) == where


def test_block_weights_scale_the_learning_rate_and_freeze_blocks_at_zero():
    net = ToyNet()
    weights = BlockWeights.parse("0,0.5,1,1,1,0.25", "2", "zeros+0.05", 0.1, "sd1")
    groups = build_param_groups(net, unet_lr=1e-4, text_encoder_lr=1e-4, block_weights=weights)
    in01, in05, mid, out11 = net.unet_loras
    assert lr_of(groups, in01.lora_up.weight) == pytest.approx(0.5e-4)
    assert lr_of(groups, in05.lora_up.weight) == pytest.approx(0.25e-4)
    assert lr_of(groups, mid.lora_down.weight) == pytest.approx(2e-4)
    assert lr_of(groups, net.te_loras[0].lora_up.weight) == pytest.approx(1e-4)  # text encoder: 1
    # OUT11 weighs 0.05 <= the zero threshold 0.1: not trained at all
    assert not out11.lora_up.weight.requires_grad
    assert all(p is not out11.lora_up.weight for g in groups for p in g["params"])


def test_block_weight_settings_are_checked_and_limited_to_kohya_lora_types():
    with pytest.raises(ConfigError) as info:
        config_from_dict({**REQUIRED, "up_lr_weight": "1,2,three"})
    assert "up_lr_weight" in info.value.by_key()
    with pytest.raises(ConfigError) as info:
        config_from_dict({**REQUIRED, "down_lr_weight": "sine", "LoRA_type": "LyCORIS/LoHa"})
    assert "Standard" in info.value.by_key()["down_lr_weight"][0]
    with pytest.raises(ConfigError):
        config_from_dict({**REQUIRED, "sdxl": True, "down_lr_weight": ",".join(["1"] * 12)})


def test_loraplus_and_block_weights_are_written_to_the_network_args():
    cfg = TrainingConfig(loraplus_lr_ratio=16, down_lr_weight="sine", mid_lr_weight="0.5")
    module, args = kohya_network_args(cfg)
    assert module == "networks.lora"
    assert (
        args["loraplus_lr_ratio"] == "16.0"
        and args["down_lr_weight"] == "sine"
        and args["mid_lr_weight"] == "0.5"
    )


# ---- scale_weight_norms ------------------------------------------------------------------------
@pytest.mark.parametrize("conv", [False, True])
def test_max_norm_caps_each_modules_delta_norm_and_counts_the_scaled_ones(conv):
    net = ToyNet(conv=conv)
    with torch.no_grad():
        for i, lora in enumerate(net.loras):
            lora.lora_up.weight.normal_(0, 2.0 if i % 2 else 1e-4)  # every other one is large
    before = [delta_norm(lora).item() for lora in net.loras]
    stats = apply_max_norm(net, 0.1, torch.device("cpu"))
    after = [delta_norm(lora).item() for lora in net.loras]
    assert stats.keys_scaled == sum(b > 0.1 for b in before) == 2
    for b, a in zip(before, after, strict=True):
        assert a == pytest.approx(min(b, 0.1), rel=1e-4)  # big ones land on the cap exactly
    assert stats.max_norm == pytest.approx(max(after), rel=1e-4)
    assert stats.mean_norm == pytest.approx(sum(after) / len(after), rel=1e-4)


def test_max_norm_matches_the_merged_weight_change():
    net = ToyNet(conv=True)
    with torch.no_grad():
        net.unet_loras[0].lora_up.weight.normal_()
    lora = net.unet_loras[0]
    assert delta_norm(lora).item() == pytest.approx(lora.delta_weight().norm().item(), rel=1e-5)


# ---- stop_text_encoder_training ---------------------------------------------------------------
def test_the_text_encoder_stops_learning_after_its_share_of_the_steps():
    assert text_encoder_stop_step(0, 100) == 0 and text_encoder_stop_step(30, 7) == 3  # ceil, as Kohya
    net = ToyNet()
    groups = build_param_groups(net, unet_lr=1e-2, text_encoder_lr=1e-2)
    optimizer = torch.optim.AdamW(groups)
    cfg = TrainingConfig(stop_text_encoder_training=50, scale_weight_norms=0)
    events = []
    hooks = StepHooks(cfg, net, optimizer, 4, torch.device("cpu"), events.append, train_text_encoder=True)
    te, unet = net.te_loras[0], net.unet_loras[0]
    x = torch.randn(4, 8)
    snapshots = []
    for step in range(1, 5):
        loss = sum(((lora.base(x)) ** 2).mean() for lora in net.loras) + (te.base(x) - 1).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        hooks.after_step(step)
        snapshots.append((te.lora_up.weight.clone(), unet.lora_up.weight.clone()))
    assert not torch.equal(snapshots[0][0], snapshots[1][0])  # steps 1-2 train the text encoder
    assert torch.equal(snapshots[1][0], snapshots[3][0])  # after 50% of 4 steps: frozen
    assert not torch.equal(snapshots[1][1], snapshots[3][1])  # the U-Net goes on
    assert any("stopped after step 2" in e.data["message"] for e in events)
    # A run resumed after the stop starts with the text encoder frozen.
    resumed = ToyNet()
    hooks = StepHooks(
        cfg,
        resumed,
        torch.optim.AdamW(build_param_groups(resumed, unet_lr=1e-2, text_encoder_lr=1e-2)),
        4,
        torch.device("cpu"),
        events.append,
        train_text_encoder=True,
    )
    hooks.resumed_at(0)
    assert resumed.te_loras[0].lora_up.weight.requires_grad
    hooks.resumed_at(3)
    assert not resumed.te_loras[0].lora_up.weight.requires_grad


def test_kohya_keys_for_the_text_encoder_stop():
    cfg, _ = config_from_dict({**REQUIRED, "stop_text_encoder_training_pct": "30"})
    assert cfg.stop_text_encoder_training == 30
    cfg, _ = config_from_dict({**REQUIRED, "stop_text_encoder_training": 20})
    assert cfg.stop_text_encoder_training == 20


# ---- one short run with every option of this family -------------------------------------------
@pytest.mark.slow
def test_a_run_with_loraplus_block_weights_max_norm_huber_and_te_stop(tiny_model, tmp_path):
    from safetensors import safe_open

    from trainer.presets import load_preset
    from trainer.run.train import train_with_events

    data = make_toy_dataset(tmp_path / "data", n=2)
    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        data,
        epoch=1,
        train_batch_size=1,
        save_every_n_epochs=1,
        loraplus_lr_ratio=16,
        down_lr_weight="sine+0.1",
        mid_lr_weight="0.5",
        up_lr_weight="zeros+0.5",
        scale_weight_norms=1e-4,
        stop_text_encoder_training=50,
        loss_type="huber",
        huber_schedule="snr",
        ip_noise_gamma=0.1,
        noise_offset=0.05,
        adaptive_noise_scale=0.01,
        noise_offset_random_strength=True,
    )
    cfg, _ = load_preset(preset)
    events = []
    assert train_with_events(cfg, events.append) == 0, [e.data for e in events if e.kind == "error"]
    steps = [e.data for e in events if e.kind == "step"]
    assert steps and all(s["keys_scaled"] >= 0 and math.isfinite(s["loss"]) for s in steps)
    assert steps[-1]["max_key_norm"] == pytest.approx(1e-4, rel=1e-3)  # capped every step
    assert any(
        "Text encoder training stopped after step 1" in e.data.get("message", "")
        for e in events
        if e.kind == "log"
    )
    with safe_open(tmp_path / "out" / "toy.safetensors", "pt") as f:
        args = json.loads(f.metadata()["ss_network_args"])
    assert args["loraplus_lr_ratio"] == "16.0" and args["down_lr_weight"] == "sine+0.1"
