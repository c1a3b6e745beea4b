"""What a Kohya GUI user brings along: its other key spellings, "Additional parameters",
the values its shipped presets hold and its LoRA types. Its launch settings for several
GPUs are in test_kohya_launch.py, lr_scheduler_type in test_torch_schedulers.py."""

import pytest
import torch

from tests.helpers import load_kohya, make_toy_dataset, write_preset
from trainer.config import FIELDS
from trainer.config.kohya import parse_additional_parameters
from trainer.config.validate import ConfigError


# ---- key spellings ---------------------------------------------------------------------------
def test_older_and_sdxl_specific_kohya_keys_become_ours():
    cfg, warnings = load_kohya(
        lora_network_weights="C:/loras/start.safetensors",
        sdxl=True,
        sdxl_cache_text_encoder_outputs=True,
        network_train_unet_only=True,
        sdxl_no_half_vae=True,
        dynamo_backend="inductor",
        multi_gpu=True,
        num_machines=1,
        highvram=True,
        log_with="tensorboard",
    )
    assert cfg.network_weights == "C:/loras/start.safetensors"
    older, _ = load_kohya(conv_dims="", conv_alphas="")  # older names of the conv block lists, empty
    assert older.conv_block_dims == ""
    assert cfg.cache_text_encoder_outputs and cfg.torch_compile
    text = "\n".join(warnings)
    assert "lora_network_weights -> network_weights" in text
    assert "sdxl_no_half_vae: not needed" in text and "highvram: not needed" in text
    assert "not used" not in text  # every key above was understood


def test_off_switches_we_lack_are_not_reported_but_set_ones_are():
    _, warnings = load_kohya(
        use_wandb=False,
        weighted_captions=False,
        no_token_padding=False,
        model_list="",
        some_new_kohya_switch=True,
        some_new_kohya_number=0,
    )
    unused = next(w for w in warnings if "not used" in w)
    assert "some_new_kohya_switch" in unused and "some_new_kohya_number" in unused
    assert not any(k in unused for k in ("use_wandb", "weighted_captions", "no_token_padding", "model_list"))


def test_dynamo_backend_no_leaves_compile_off():
    cfg, _ = load_kohya(dynamo_backend="no")
    assert not cfg.torch_compile


# ---- additional parameters -----------------------------------------------------------------
def test_additional_parameters_naming_our_settings_become_them_the_rest_are_named():
    cfg, warnings = load_kohya(
        max_grad_norm=1.0,
        additional_parameters=(
            "--max_grad_norm=0.5 --sdpa --log_prefix run1 --optimizer_type Lion "
            "--optimizer_args weight_decay=0.1 betas=0.9,0.99 --cache_latents"
        ),
    )
    assert cfg.max_grad_norm == 0.5  # last on Kohya's command line: it wins
    assert (cfg.xformers, cfg.optimizer, cfg.cache_latents) == ("sdpa", "Lion", True)
    assert cfg.optimizer_args == "weight_decay=0.1 betas=0.9,0.99"
    text = "\n".join(warnings)
    assert "max_grad_norm = 0.5" in text
    assert "not used by this trainer (ignored): --log_prefix run1" in text


def test_additional_parameters_keep_windows_paths_and_are_never_run():
    found, notes = parse_additional_parameters(r'--vae "C:\models\my vae.safetensors"; rm -rf /', set(FIELDS))
    assert found == {"vae": r"C:\models\my vae.safetensors;"}
    assert notes[-1] == "additional_parameters: not used by this trainer (ignored): rm, -rf, /"
    found, notes = parse_additional_parameters('--vae "unclosed', set(FIELDS))
    assert found == {} and "could not be read" in notes[0]


def test_a_bad_value_in_additional_parameters_is_named_like_any_other():
    try:
        load_kohya(additional_parameters="--max_grad_norm=lots")
    except ConfigError as exc:
        assert "max_grad_norm" in exc.by_key()
    else:
        raise AssertionError("a word where a number belongs must be refused")


# ---- values Kohya's own shipped presets hold -----------------------------------------------------
def test_values_from_kohyas_shipped_presets_load_with_a_note_for_each_change():
    cfg, warnings = load_kohya(
        additional_parameters="",
        log_with="",  # keys only the Kohya GUI writes
        LoRA_type="LyCORIS/LoKr",
        network_dim=100000,
        conv_dim=100000,
        factor=8,
        optimizer="Prodigy",
        learning_rate=1,
        optimizer_args='"d0=1e-5" "d_coef=1.0" "weight_decay=0.4" "decouple=True"',
        bucket_reso_steps=1,
        enable_bucket=False,
        max_resolution="512,650",
        save_every_n_epochs=0,
        noise_offset_type="Multires",
        multires_noise_iterations=6,
        noise_offset=0,
        adaptive_noise_scale=0.005,
    )
    assert cfg.optimizer_args == "d0=1e-5 d_coef=1.0 weight_decay=0.4 decouple=True"
    assert (cfg.bucket_reso_steps, cfg.max_resolution, cfg.save_every_n_epochs) == (8, "512,640", 10000)
    assert cfg.network_dim == 100000  # LoKr: a full matrix
    text = "\n".join(warnings)
    assert "optimizer_args: quotes removed" in text and "bucket_reso_steps: 1 -> 8" in text
    assert "'512,650' -> '512,640'" in text and "adaptive_noise_scale has no effect" in text


def test_our_own_presets_keep_the_strict_rules():
    for key, value in (("save_every_n_epochs", 0), ("bucket_reso_steps", 1), ("max_resolution", "512,650")):
        with pytest.raises(ConfigError) as info:
            load_kohya(**{key: value})
        assert key in info.value.by_key()


def test_a_rank_above_1024_is_refused_for_a_type_that_cannot_use_it():
    try:
        load_kohya(LoRA_type="Standard", network_dim=100000)
    except ConfigError as exc:
        assert "only LyCORIS/LoKr" in exc.by_key()["network_dim"][0]
    else:
        raise AssertionError("a Standard LoRA of rank 100000 must be refused")


def test_kohyas_save_every_0_writes_only_the_final_file(tiny_model, tmp_path):
    from trainer.__main__ import main

    data = make_toy_dataset(tmp_path / "data", n=2)
    preset = write_preset(
        tmp_path, tiny_model("sd15"), data, epoch=2, save_every_n_epochs=0, model_list="custom"
    )  # a Kohya GUI file
    assert main(["--config", str(preset)]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["toy.safetensors"]


def test_a_full_matrix_lokr_trains_and_saves_its_alpha_exactly(tiny_model, tmp_path):
    from safetensors import safe_open

    from trainer.__main__ import main

    data = make_toy_dataset(tmp_path / "data", n=2)
    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        data,
        max_train_steps=1,
        epoch=1,
        LoRA_type="LyCORIS/LoKr",
        network_dim=100000,
        conv_dim=100000,
        factor=4,
    )
    assert main(["--config", str(preset)]) == 0
    with safe_open(str(tmp_path / "out" / "toy.safetensors"), "pt") as f:
        keys = list(f.keys())
        alphas = [k for k in keys if k.endswith(".alpha")]
        assert alphas and all(f.get_tensor(k).item() == 100000 for k in alphas)
        assert any(k.endswith(".lokr_w2") for k in keys)  # the undecomposed matrix
        assert not any(k.endswith(".lokr_w2_a") for k in keys)


# ---- LoRA types of the Kohya GUI -------------------------------------------------------------------
def test_sd_scripts_native_types_train_as_their_lycoris_versions():
    for kohya, ours in (
        ("Kohya LoHa", "LyCORIS/LoHa"),
        ("Kohya LoKr", "LyCORIS/LoKr"),
        ("Kohya DyLoRA", "LyCORIS/DyLoRA"),
    ):
        cfg, warnings = load_kohya(LoRA_type=kohya)
        assert cfg.LoRA_type == ours
        assert any(f"{kohya!r} -> {ours!r}" in w for w in warnings)


def test_lora_fa_trains_the_up_matrix_only(tiny_model, tmp_path):
    from safetensors import safe_open

    from trainer.__main__ import main

    data = make_toy_dataset(tmp_path / "data", n=2)
    tensors = {}
    for steps in (1, 3):
        out = tmp_path / f"out{steps}"
        preset = write_preset(
            tmp_path,
            tiny_model("sd15"),
            data,
            max_train_steps=steps,
            epoch=1,
            LoRA_type="LoRA-FA",
            output_dir=str(out),
        )
        assert main(["--config", str(preset)]) == 0
        with safe_open(str(out / "toy.safetensors"), "pt") as f:
            tensors[steps] = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            assert f.metadata()["ss_network_module"] == "networks.lora_fa"
    downs = [k for k in tensors[1] if k.endswith("lora_down.weight")]
    ups = [k for k in tensors[1] if k.endswith("lora_up.weight")]
    assert downs and all(torch.equal(tensors[1][k], tensors[3][k]) for k in downs)  # frozen
    assert any(not torch.equal(tensors[1][k], tensors[3][k]) for k in ups)  # learning


def test_a_flux_preset_is_refused_with_the_reason():
    with pytest.raises(ConfigError) as info:
        load_kohya(LoRA_type="Flux1")
    assert "another model family" in info.value.by_key()["LoRA_type"][0]
