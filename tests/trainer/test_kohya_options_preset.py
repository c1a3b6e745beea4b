"""Kohya GUI presets that set every optimizer, noise, loss, network, text-encoder and memory
option load here with each value in place (numbers as Kohya writes them, often strings)."""

import json

from tests.helpers import KOHYA_PATHS
from trainer.presets import load_preset

STANDARD = {
    "LoRA_type": "Standard",
    "v2": True,
    "v_parameterization": True,
    "optimizer": "Adafactor",
    "optimizer_args": "scale_parameter=False relative_step=False warmup_init=False",
    "learning_rate": "0.0005",
    "unet_lr": "0.0005",
    "text_encoder_lr": "0.0001",
    "lr_scheduler": "cosine_with_restarts",
    "lr_warmup": "10",
    "lr_warmup_steps": "0",
    "lr_scheduler_num_cycles": "3",
    "lr_scheduler_power": "1.5",
    "noise_offset_type": "Original",
    "noise_offset": "0.05",
    "adaptive_noise_scale": "0.01",
    "noise_offset_random_strength": True,
    "ip_noise_gamma": "0.1",
    "ip_noise_gamma_random_strength": True,
    "loss_type": "smooth_l1",
    "huber_c": "0.2",
    "huber_schedule": "exponential",
    "huber_scale": "1.5",
    "scale_v_pred_loss_like_noise_pred": True,
    "min_snr_gamma": "5",
    "loraplus_lr_ratio": "16",
    "loraplus_unet_lr_ratio": 8,
    "loraplus_text_encoder_lr_ratio": 4,
    "scale_weight_norms": "1",
    "down_lr_weight": "sine+0.1",
    "mid_lr_weight": "0.5",
    "up_lr_weight": "1,1,1,1,1,1,0.5,0.5,0.5,0.5,0.5,0.5",
    "block_lr_zero_threshold": "0.1",
    "stop_text_encoder_training": 30,
    "max_token_length": "225",
    "clip_skip": "2",
    "gradient_checkpointing": True,
    "xformers": "sdpa",
    "mem_eff_attn": True,
    "mixed_precision": "bf16",
    "full_bf16": True,
    "fp8_base": True,
    "num_cpu_threads_per_process": "4",
    # Keys a Kohya GUI file always carries for options of other LoRA types / tools.
    "bypass_mode": False,
    "rank_dropout_scale": False,
    "train_on_input": True,
}

EXPECTED_STANDARD = {
    "optimizer": "Adafactor",
    "optimizer_args": "scale_parameter=False relative_step=False warmup_init=False",
    "learning_rate": 5e-4,
    "unet_lr": 5e-4,
    "text_encoder_lr": 1e-4,
    "lr_scheduler": "cosine_with_restarts",
    "lr_warmup": 10,
    "lr_scheduler_num_cycles": 3,
    "lr_scheduler_power": 1.5,
    "noise_offset": 0.05,
    "adaptive_noise_scale": 0.01,
    "noise_offset_random_strength": True,
    "ip_noise_gamma": 0.1,
    "ip_noise_gamma_random_strength": True,
    "loss_type": "smooth_l1",
    "huber_c": 0.2,
    "huber_schedule": "exponential",
    "huber_scale": 1.5,
    "scale_v_pred_loss_like_noise_pred": True,
    "min_snr_gamma": 5,
    "loraplus_lr_ratio": 16,
    "loraplus_unet_lr_ratio": 8,
    "loraplus_text_encoder_lr_ratio": 4,
    "scale_weight_norms": 1,
    "down_lr_weight": "sine+0.1",
    "mid_lr_weight": "0.5",
    "up_lr_weight": "1,1,1,1,1,1,0.5,0.5,0.5,0.5,0.5,0.5",
    "block_lr_zero_threshold": 0.1,
    "stop_text_encoder_training": 30,
    "max_token_length": 225,
    "clip_skip": 2,
    "gradient_checkpointing": True,
    "xformers": "sdpa",
    "mem_eff_attn": True,
    "mixed_precision": "bf16",
    "full_bf16": True,
    "fp8_base": True,
    "num_cpu_threads_per_process": 4,
}

LYCORIS = {
    "LoRA_type": "LyCORIS/LoKr",
    "LyCORIS_preset": "attn-mlp",
    "network_dim": "16",
    "network_alpha": "8",
    "conv_dim": "8",
    "conv_alpha": "4",
    "factor": "8",
    "decompose_both": True,
    "dora_wd": True,
    "use_tucker": True,
    "use_scalar": True,
    "train_norm": True,
    "optimizer": "Prodigy",
    "learning_rate": "1",
    "unet_lr": "1",
    "text_encoder_lr": "1",
    "lr_scheduler": "constant",
    "mixed_precision": "no",
    "loraplus_lr_ratio": "4",
    "scale_weight_norms": "2",
}


def load(tmp_path, preset: dict):
    path = tmp_path / "kohya.json"
    path.write_text(json.dumps({**KOHYA_PATHS, **preset}), encoding="utf-8")
    return load_preset(path)


def test_a_kohya_preset_with_every_parameters_and_advanced_option_loads_in_place(tmp_path):
    cfg, warnings = load(tmp_path, STANDARD)
    for key, value in EXPECTED_STANDARD.items():
        assert getattr(cfg, key) == value, key
    unused = "\n".join(w for w in warnings if "not used" in w)
    assert not any(k in unused for k in EXPECTED_STANDARD)
    # The LyCORIS options are settings now: read, and ignored by Standard without a word
    # (their values here are what every Kohya GUI file carries).
    assert (cfg.bypass_mode, cfg.rank_dropout_scale, cfg.train_on_input) == (False, False, True)
    assert not any(k in "\n".join(warnings) for k in ("bypass_mode", "rank_dropout_scale", "train_on_input"))


def test_a_kohya_lycoris_preset_loads_in_place(tmp_path):
    cfg, warnings = load(tmp_path, LYCORIS)
    assert (cfg.LoRA_type, cfg.LyCORIS_preset, cfg.factor) == ("LyCORIS/LoKr", "attn-mlp", 8)
    assert (cfg.network_dim, cfg.network_alpha, cfg.conv_dim, cfg.conv_alpha) == (16, 8, 8, 4)
    assert cfg.decompose_both and cfg.dora_wd and cfg.use_tucker and cfg.use_scalar and cfg.train_norm
    assert (cfg.optimizer, cfg.learning_rate, cfg.loraplus_lr_ratio, cfg.scale_weight_norms) == (
        "Prodigy",
        1,
        4,
        2,
    )
    assert not any("not used" in w for w in warnings)


def test_kohya_spellings_of_the_lora_type_and_the_text_encoder_stop(tmp_path):
    cfg, warnings = load(
        tmp_path, {"LoRA_type": "LoCon", "stop_text_encoder_training_pct": 40, "mixed_precision": "no"}
    )
    assert cfg.LoRA_type == "LyCORIS/LoCon" and cfg.stop_text_encoder_training == 40
    assert any("'LoCon' -> 'LyCORIS/LoCon'" in w for w in warnings)


def test_kohya_timestep_loss_scheduler_and_vae_batch_keys_load_in_place(tmp_path):
    preset = {
        "min_timestep": 100,
        "max_timestep": "900",
        "debiased_estimation_loss": True,
        "v_pred_like_loss": "0.1",
        "lr_scheduler": "cosine_with_min_lr",
        "lr_scheduler_args": "min_lr_rate=0.1",
        "vae_batch_size": 4,
        "mixed_precision": "no",
    }
    cfg, warnings = load(tmp_path, preset)
    assert (cfg.min_timestep, cfg.max_timestep, cfg.debiased_estimation_loss, cfg.v_pred_like_loss) == (
        100,
        900,
        True,
        0.1,
    )
    assert (cfg.lr_scheduler, cfg.lr_scheduler_args, cfg.vae_batch_size) == (
        "cosine_with_min_lr",
        "min_lr_rate=0.1",
        4,
    )
    unused = "\n".join(w for w in warnings if "not used" in w)
    assert not any(k in unused for k in preset)
    cfg, _ = load(
        tmp_path,
        {
            "min_timestep": "",
            "max_timestep": "",
            "vae_batch_size": "",
            "v_pred_like_loss": "",
            "lr_scheduler_args": "",
            "mixed_precision": "no",
        },
    )
    assert (cfg.min_timestep, cfg.max_timestep, cfg.vae_batch_size, cfg.v_pred_like_loss) == (0, 1000, 0, 0)
