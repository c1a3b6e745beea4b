"""Where the LoRA goes and what its modules are called: the targets and Kohya names at the
published SD1.5 / SD2 / SDXL sizes (docs/ANCHORS.md section 5), counted on meta-device models."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from trainer.network import LoRANetwork, SgmLayout, find_targets

SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "block_out_channels": [320, 640, 1280, 1280],
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
SD2_UNET = {
    **SD15_UNET,
    "cross_attention_dim": 1024,
    "attention_head_dim": [5, 10, 20, 20],
    "use_linear_projection": True,
}
SDXL_UNET = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "cross_attention_dim": 2048,
    "block_out_channels": [320, 640, 1280],
    "attention_head_dim": [5, 10, 20],
    "transformer_layers_per_block": [1, 2, 10],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
CLIP_L = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
}
OPEN_CLIP_H = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
}
OPEN_CLIP_BIGG = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}


@pytest.fixture(scope="module")
def full_size_on_meta():
    """The published SD1.5 / SD2 / SDXL shapes, built without allocating any weight."""
    with torch.device("meta"):
        return {
            "sd1": (UNet2DConditionModel(**SD15_UNET), [CLIPTextModel(CLIPTextConfig(**CLIP_L))]),
            "sd2": (UNet2DConditionModel(**SD2_UNET), [CLIPTextModel(CLIPTextConfig(**OPEN_CLIP_H))]),
            "sdxl": (
                UNet2DConditionModel(**SDXL_UNET),
                [
                    CLIPTextModel(CLIPTextConfig(**CLIP_L)),
                    CLIPTextModelWithProjection(CLIPTextConfig(**OPEN_CLIP_BIGG)),
                ],
            ),
        }


@pytest.mark.parametrize(
    ("arch", "conv", "n_te", "n_unet"),
    [("sd1", False, 72, 192), ("sd1", True, 72, 278), ("sd2", False, 138, 192), ("sdxl", False, 264, 722)],
)
def test_module_counts_match_sd_scripts_at_full_size(full_size_on_meta, arch, conv, n_te, n_unet):
    unet, encoders = full_size_on_meta[arch]
    unet_found, te_found = find_targets(unet, encoders, arch=arch, conv=conv)
    assert (len(te_found), len(unet_found)) == (n_te, n_unet)


def test_network_on_meta_has_three_tensors_per_module(full_size_on_meta):
    unet, encoders = full_size_on_meta["sd1"]
    net = LoRANetwork(unet, encoders, arch="sd1", rank=8, alpha=1, conv_rank=4, conv_alpha=1)
    assert (len(net.te_loras), len(net.unet_loras)) == (72, 278)
    keys = net.state_dict().keys()
    assert len(keys) == 3 * 350
    conv = net.get_submodule("lora_unet_down_blocks_0_resnets_0_conv1")
    assert conv.rank == 4 and conv.lora_down.kernel_size == (3, 3)
    assert net.get_submodule("lora_unet_down_blocks_0_resnets_0_time_emb_proj").rank == 8


def test_sd1_names(full_size_on_meta):
    unet, encoders = full_size_on_meta["sd1"]
    unet_found, te_found = find_targets(unet, encoders, arch="sd1", conv=True)
    names = {n for n, _ in unet_found + te_found}
    for expected in [
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_out_0",
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_0_proj",
        "lora_unet_mid_block_attentions_0_proj_in",
        "lora_unet_up_blocks_3_attentions_2_proj_out",
        "lora_unet_down_blocks_0_downsamplers_0_conv",
        "lora_unet_up_blocks_1_resnets_0_conv_shortcut",
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
        "lora_te_text_model_encoder_layers_11_mlp_fc2",
    ]:
        assert expected in names


def test_sdxl_names_use_sgm_blocks(full_size_on_meta):
    unet, encoders = full_size_on_meta["sdxl"]
    unet_found, te_found = find_targets(unet, encoders, arch="sdxl", conv=True)
    names = {n for n, _ in unet_found + te_found}
    for expected in [
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q",
        "lora_unet_input_blocks_8_1_transformer_blocks_9_ff_net_2",
        "lora_unet_middle_block_1_transformer_blocks_0_attn2_to_k",
        "lora_unet_output_blocks_0_1_transformer_blocks_0_attn1_to_q",
        "lora_unet_output_blocks_5_1_proj_out",
        "lora_unet_input_blocks_3_0_op",
        "lora_unet_output_blocks_2_2_conv",
        "lora_unet_output_blocks_2_0_skip_connection",
        "lora_unet_input_blocks_1_0_in_layers_2",
        "lora_unet_middle_block_2_emb_layers_1",
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
        "lora_te2_text_model_encoder_layers_31_mlp_fc1",
    ]:
        assert expected in names
    assert not any("down_blocks" in n or "up_blocks" in n or "mid_block_" in n for n in names)


def test_sgm_layout_without_attention_upsampler_position():
    layout = SgmLayout.from_config(
        {
            "layers_per_block": 1,
            "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        }
    )
    assert layout.to_sgm("up_blocks.0.upsamplers.0.conv") == "output_blocks.1.1.conv"
    assert layout.to_sgm("down_blocks.0.downsamplers.0.conv") == "input_blocks.2.0.op"
    assert layout.to_sgm("down_blocks.1.resnets.0.conv1") == "input_blocks.3.0.in_layers.2"
    with pytest.raises(ValueError, match="no SGM name"):
        layout.to_sgm("down_blocks.1.downsamplers.0.conv")  # the last block has none
