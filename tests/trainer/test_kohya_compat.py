"""What a Kohya GUI user brings along: its other key spellings, "Additional parameters",
several GPUs (accelerate launch settings) and the pruning of old training states."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.trainer.test_train_e2e import make_toy_dataset, write_preset
from trainer.config import FIELDS, config_from_dict
from trainer.config.kohya import parse_additional_parameters
from trainer.config.validate import ConfigError
from trainer.launch import accelerate_command, under_launcher
from trainer.plan.saves import SaveSchedule, prune_epoch_states, prune_older, prune_step_states

BASE = {
    "pretrained_model_name_or_path": "runwayml/stable-diffusion-v1-5",
    "train_data_dir": "C:/img",
    "output_dir": "C:/out",
    "output_name": "mine",
    "mixed_precision": "no",
}


def load(**preset):
    return config_from_dict({**BASE, **preset})


# ---- key spellings ---------------------------------------------------------------------------
def test_older_and_sdxl_specific_kohya_keys_become_ours():
    cfg, warnings = load(
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
    older, _ = load(conv_dims="", conv_alphas="")  # older names of the conv block lists, empty
    assert older.conv_block_dims == ""
    assert cfg.cache_text_encoder_outputs and cfg.torch_compile
    text = "\n".join(warnings)
    assert "lora_network_weights -> network_weights" in text
    assert "sdxl_no_half_vae: not needed" in text and "highvram: not needed" in text
    assert "not used" not in text  # every key above was understood


def test_off_switches_we_lack_are_not_reported_but_set_ones_are():
    _, warnings = load(
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
    cfg, _ = load(dynamo_backend="no")
    assert not cfg.torch_compile


# ---- additional parameters -----------------------------------------------------------------
def test_additional_parameters_naming_our_settings_become_them_the_rest_are_named():
    cfg, warnings = load(
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
        load(additional_parameters="--max_grad_norm=lots")
    except ConfigError as exc:
        assert "max_grad_norm" in exc.by_key()
    else:
        raise AssertionError("a word where a number belongs must be refused")


# ---- several GPUs ------------------------------------------------------------------------------
def test_kohya_accelerate_settings_load_and_build_the_launch_arguments():
    cfg, _ = load(num_processes="2", gpu_ids="0, 1", main_process_port="29600", multi_gpu=True)
    assert (cfg.num_processes, cfg.main_process_port) == (2, 29600)
    cmd = accelerate_command("run.json", cfg, python="py")
    assert cmd[:9] == [
        "py",
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
    ]
    assert cmd[cmd.index("--gpu_ids") + 1] == "0,1"
    assert cmd[cmd.index("--main_process_port") + 1] == "29600"
    assert cmd[-5:] == ["trainer", "--config", "run.json", "--events", "jsonl"]
    assert all(isinstance(part, str) for part in cmd)  # an argument list, never a shell string


def test_gpu_ids_are_checked_against_the_process_count():
    for ids, n, word in (("0,a", 1, "GPU numbers"), ("0", 2, "one GPU per process")):
        try:
            load(gpu_ids=ids, num_processes=n)
        except ConfigError as exc:
            assert word in " ".join(exc.by_key()["gpu_ids"])
        else:
            raise AssertionError(f"gpu_ids {ids!r} with {n} processes must be refused")


def test_inside_a_launcher_the_trainer_does_not_launch_again():
    assert under_launcher({"LOCAL_RANK": "0", "WORLD_SIZE": "2"})
    assert not under_launcher({"PATH": "/usr/bin"})


def test_the_plan_counts_the_steps_each_process_shares(tiny_model, tmp_path):
    from trainer.plan.training_plan import build_plan

    data = make_toy_dataset(tmp_path / "data", n=4)
    preset = write_preset(tmp_path, tiny_model("sd15"), data, train_batch_size=1, epoch=1)
    one, _ = config_from_dict(json.loads(preset.read_text()))
    assert build_plan(one).total_steps == 4
    assert build_plan(one.model_copy(update={"num_processes": 2})).total_steps == 2


def test_the_cli_starts_accelerate_itself_for_several_processes(tmp_path, monkeypatch):
    import subprocess

    from trainer.__main__ import main

    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({**BASE, "num_processes": 2}), encoding="utf-8")
    seen = {}

    class Proc:
        def __init__(self, cmd, **kwargs):
            seen["cmd"], seen["kwargs"] = cmd, kwargs

        def wait(self):
            return 0

    for key in ("LOCAL_RANK", "WORLD_SIZE", "ACCELERATE_DYNAMO_BACKEND"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(subprocess, "Popen", Proc)
    assert main(["--config", str(preset), "--resume", "C:/out/mine-state"]) == 0
    cmd = seen["cmd"]
    assert cmd[0] == sys.executable and "--multi_gpu" in cmd and "shell" not in seen["kwargs"]
    assert cmd[cmd.index("--config") + 1] == str(preset)
    assert cmd[-2:] == ["--resume", "C:/out/mine-state"] and "--events" not in cmd


# ---- pruning training states ---------------------------------------------------------------------
def make_state(folder: Path, name: str) -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "state.json").write_text("{}")


def test_old_state_folders_are_pruned_but_never_a_folder_that_is_not_a_state(tmp_path):
    for e in (1, 2, 3):
        make_state(tmp_path, f"toy-{e:06d}-state")
    (tmp_path / "toy-000000-state").mkdir()  # not ours: no state.json
    make_state(tmp_path, "toy-state")  # the final state
    removed = prune_epoch_states(tmp_path, "toy", current_epoch=3, keep=1)
    assert sorted(p.name for p in removed) == ["toy-000001-state", "toy-000002-state"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy-000000-state", "toy-000003-state", "toy-state"]
    for s in (100, 200, 300):
        make_state(tmp_path, f"toy-step{s:08d}-state")
    prune_step_states(tmp_path, "toy", current_step=300, window=150)
    assert not (tmp_path / "toy-step00000100-state").exists()
    assert (tmp_path / "toy-step00000200-state").exists()


def test_states_follow_the_file_pruning_unless_their_own_number_is_set(tmp_path):
    class Saver:
        def save(self, name, epoch, step, final=False):
            (tmp_path / f"{name}.safetensors").write_bytes(b"x")
            make_state(tmp_path, f"{name}-state")
            return tmp_path / f"{name}.safetensors"

    settings = SimpleNamespace(
        output_dir=str(tmp_path),
        output_name="toy",
        save_every_n_epochs=1,
        save_last_n_epochs=1,
        save_last_n_epochs_state=2,
        save_every_n_steps=0,
        save_last_n_steps=0,
    )
    logs = []
    saves = SaveSchedule(settings, total_steps=10, epochs=5)
    for point in (saves.after_epoch(epoch, epoch) for epoch in (1, 2, 3)):
        Saver().save(point.name, point.epoch, point.step)
        logs += prune_older(settings, point)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "toy-000002-state",
        "toy-000003-state",
        "toy-000003.safetensors",
    ]
    assert any("training state toy-000001-state" in line for line in logs)


def test_a_run_with_save_state_keeps_only_the_newest_state(tiny_model, tmp_path):
    from trainer.__main__ import main

    data = make_toy_dataset(tmp_path / "data", n=2)
    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        data,
        max_train_steps=3,
        epoch=1,
        save_every_n_epochs=1,
        save_last_n_epochs=1,
        save_state=True,
    )
    assert main(["--config", str(preset)]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "toy-000002-state",
        "toy-000002.safetensors",
        "toy-state",
        "toy.safetensors",
    ]


# ---- values Kohya's own shipped presets hold -----------------------------------------------------
def test_values_from_kohyas_shipped_presets_load_with_a_note_for_each_change():
    cfg, warnings = load(
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
            load(**{key: value})
        assert key in info.value.by_key()


def test_a_rank_above_1024_is_refused_for_a_type_that_cannot_use_it():
    try:
        load(LoRA_type="Standard", network_dim=100000)
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


# ---- lr_scheduler_type: a PyTorch class by name ------------------------------------------------
def test_a_kohya_preset_with_a_pytorch_scheduler_in_additional_parameters_loads():
    cfg, warnings = load(
        lr_scheduler="cosine",
        lr_warmup=10,
        additional_parameters=(
            '--lr_scheduler_type "CosineAnnealingLR" --lr_scheduler_args "T_max=1000" "eta_min=0e-0"'
        ),
    )
    assert (cfg.lr_scheduler_type, cfg.lr_scheduler_args) == ("CosineAnnealingLR", "T_max=1000 eta_min=0e-0")
    assert any("lr_scheduler 'cosine' and the LR warmup are not used" in w for w in warnings)


@pytest.mark.parametrize(
    "kind, args, key, words",
    [
        ("os.system", "", "lr_scheduler_type", "no other code is loaded"),
        ("CosineAnnealingLR", "", "lr_scheduler_args", "needs T_max"),
        ("StepLR", "step_size=10 foo=1", "lr_scheduler_args", "foo: is not an argument of StepLR"),
        ("StepLR", "step_size=2.5", "lr_scheduler_args", "whole number"),
        ("MultiStepLR", "milestones=a,b", "lr_scheduler_args", "step numbers"),
    ],
)
def test_bad_pytorch_schedulers_are_refused_naming_the_field(kind, args, key, words):
    with pytest.raises(ConfigError) as info:
        load(lr_scheduler_type=kind, lr_scheduler_args=args)
    assert words in " ".join(info.value.by_key()[key])


def test_the_pytorch_scheduler_decides_the_learning_rate():
    import torch

    from trainer.optim.optimizers import make_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(
        opt,
        name="cosine",
        total_steps=100,
        warmup_steps=10,
        args_text="T_max=4 eta_min=0.1",
        scheduler_type="torch.optim.lr_scheduler.CosineAnnealingLR",
    )
    assert isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 1.0  # no warmup: the class decides
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)  # eta_min at T_max


# ---- LoRA types of the Kohya GUI -------------------------------------------------------------------
def test_sd_scripts_native_types_train_as_their_lycoris_versions():
    for kohya, ours in (
        ("Kohya LoHa", "LyCORIS/LoHa"),
        ("Kohya LoKr", "LyCORIS/LoKr"),
        ("Kohya DyLoRA", "LyCORIS/DyLoRA"),
    ):
        cfg, warnings = load(LoRA_type=kohya)
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


def test_preflight_checks_the_processes_against_the_gpus(monkeypatch, tmp_path):
    import torch

    from trainer.run.preflight import run_preflight

    for key in ("LOCAL_RANK", "WORLD_SIZE", "ACCELERATE_DYNAMO_BACKEND"):
        monkeypatch.delenv(key, raising=False)
    base = {**BASE, "train_data_dir": str(tmp_path), "output_dir": str(tmp_path / "out")}
    cfg, _ = config_from_dict({**base, "num_processes": 2})
    _, warnings = run_preflight(cfg)
    if not torch.cuda.is_available():
        assert any("num_processes 2 without an NVIDIA GPU" in w for w in warnings)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    problems, _ = run_preflight(cfg)
    assert any(p.key == "num_processes" and "this machine has 1" in p.message for p in problems)
    cfg, _ = config_from_dict({**base, "num_processes": 2, "gpu_ids": "0,3"})
    problems, _ = run_preflight(cfg)
    assert any(p.key == "gpu_ids" and "GPU 3 does not exist" in p.message for p in problems)


def test_a_flux_preset_is_refused_with_the_reason():
    with pytest.raises(ConfigError) as info:
        load(LoRA_type="Flux1")
    assert "another model family" in info.value.by_key()["LoRA_type"][0]


def test_a_schedule_free_optimizer_says_the_pytorch_scheduler_is_not_used():
    _, warnings = load(
        optimizer="AdamWScheduleFree", lr_scheduler_type="CosineAnnealingLR", lr_scheduler_args="T_max=10"
    )
    assert any("lr_scheduler_type is not used: AdamWScheduleFree" in w for w in warnings)
