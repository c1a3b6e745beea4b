"""scripts/bench_sdscripts.py: both programs get the same settings, and the shim times steps.

Running sd-scripts itself needs its own venv (the recipe is in the module's docstring), so
these tests check the parts: the arguments, our preset, and the step timing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pytest

from trainer.config import config_from_dict


def test_both_sides_get_the_same_settings(script, tmp_path: Path) -> None:
    sd = script("bench_sdscripts")
    args = sd.sd_scripts_args(Path("m.safetensors"), Path("data"), Path("out"), Path("tok"), 11)
    value = {a: b for a, b in zip(args, args[1:], strict=False) if a.startswith("--")}
    assert value["--network_dim"] == "4" and value["--network_alpha"] == "1"
    assert value["--resolution"] == "256,256" and value["--train_batch_size"] == "1"
    assert value["--optimizer_type"] == "AdamW" and value["--mixed_precision"] == "no"
    assert value["--max_train_steps"] == "11" and value["--caption_extension"] == ".txt"
    assert {"--cache_latents", "--sdpa"} <= set(args) and "--network_train_unet_only" not in args
    cfg, _ = config_from_dict(sd.our_preset(Path("m.safetensors"), tmp_path, tmp_path / "o", 2, 11))
    assert (cfg.network_dim, cfg.network_alpha, cfg.train_batch_size) == (4, 1, 1)
    assert cfg.max_resolution == "256,256" and cfg.mixed_precision == "no" and cfg.cache_latents
    assert not cfg.network_train_unet_only and cfg.num_cpu_threads_per_process == 2
    assert cfg.max_train_steps == 11 and cfg.xformers == "sdpa"


def test_the_shim_times_every_optimizer_step(script, tmp_path: Path) -> None:
    program = tmp_path / "train.py"
    program.write_text(
        "import torch\n"
        "p = torch.nn.Parameter(torch.zeros(3))\n"
        "opt = torch.optim.AdamW([p])\n"
        "for _ in range(4):\n"
        "    p.grad = torch.ones(3)\n"
        "    opt.step()\n",
        encoding="utf-8",
    )
    sd = script("bench_sdscripts")
    result = sd.run_once(
        [sys.executable, str(program)],
        dict(os.environ),
        tmp_path,
        tmp_path / "steps.jsonl",
        tmp_path / "log.txt",
        warmup=1,
    )
    assert len(result["step_times"]) == 2  # 4 steps: 3 gaps, the first one warm-up
    assert result["s_per_step"] >= 0 and result["first_step_s"] > 0
    assert result["peak_rss_gib"] > 0.05  # torch alone is more than 50 MB
    lines = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert [("exit" in r) for r in lines] == [False] * 4 + [True]
    assert result["peak_vram_gib"] is None and "vram_b" not in lines[0]  # no CUDA used


# bench.py's arguments -> (sd-scripts program, batch, resolution, precision, checkpointing, images)
SETTINGS = {
    "cpu default": ([], ("train_network.py", 1, 256, "no", False, 12)),
    "sd15 512 b1": (
        ["--device", "cuda", "--arch", "sd15", "--resolution", "512", "--batch", "1"],
        ("train_network.py", 1, 512, "bf16", False, 12),
    ),
    "sd15 512 b8": (
        ["--device", "cuda", "--arch", "sd15", "--resolution", "512", "--batch", "8"],
        ("train_network.py", 8, 512, "bf16", False, 16),
    ),
    "sdxl 1024 b1 gc": (
        [
            "--device",
            "cuda",
            "--arch",
            "sdxl",
            "--resolution",
            "1024",
            "--batch",
            "1",
            "--gradient-checkpointing",
        ],
        ("sdxl_train_network.py", 1, 1024, "bf16", True, 12),
    ),
    "cuda defaults": (["--device", "cuda"], ("train_network.py", 1, 512, "bf16", False, 12)),
    "sdxl defaults": (
        ["--device", "cuda", "--arch", "sdxl"],
        ("sdxl_train_network.py", 1, 1024, "bf16", True, 12),
    ),
}


def _flags(args: list[str]) -> tuple[dict, set]:
    return {a: b for a, b in zip(args, args[1:], strict=False) if a.startswith("--")}, set(args)


@pytest.mark.parametrize("name", SETTINGS)
def test_each_setting_reaches_both_sides_alike(script, tmp_path: Path, name: str) -> None:
    argv, (program, batch, resolution, precision, checkpointing, images) = SETTINGS[name]
    sd = script("bench_sdscripts")
    s = sd.settings(script("bench")._args(["--reference", "sd-scripts", *argv]))
    assert s["images"] == images and s["images"] % batch == 0
    assert sd.sd_scripts_script(s) == program
    value, flags = _flags(sd.sd_scripts_args(Path("m.safetensors"), Path("d"), Path("o"), Path("t"), 11, s))
    assert value["--train_batch_size"] == str(batch) and value["--resolution"] == f"{resolution},{resolution}"
    assert value["--mixed_precision"] == precision and value["--network_dim"] == "4"
    assert ("--gradient_checkpointing" in flags) == checkpointing
    assert {"--cache_latents", "--sdpa"} <= flags and "--network_train_unet_only" not in flags
    cfg, _ = config_from_dict(sd.our_preset(Path("m.safetensors"), tmp_path, tmp_path / "o", 2, 11, s))
    assert (cfg.train_batch_size, cfg.max_resolution) == (batch, f"{resolution},{resolution}")
    assert cfg.mixed_precision == precision and cfg.gradient_checkpointing == checkpointing
    assert cfg.sdxl == (program == "sdxl_train_network.py") and not cfg.network_train_unet_only
    assert cfg.cache_latents and cfg.xformers == "sdpa" and (cfg.network_dim, cfg.network_alpha) == (4, 1)


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_a_frozen_text_encoder_is_mirrored(script, tmp_path: Path, arch: str) -> None:
    sd = script("bench_sdscripts")
    s = sd.settings(
        script("bench")._args(["--reference", "sd-scripts", "--arch", arch, "--no-train-text-encoder"])
    )
    _, flags = _flags(sd.sd_scripts_args(Path("m"), Path("d"), Path("o"), Path("t"), 11, s))
    assert "--network_train_unet_only" in flags
    # ours caches text-encoder outputs whenever the TE is frozen; only sdxl_train_network.py can
    assert ("--cache_text_encoder_outputs" in flags) == (arch == "sdxl")
    cfg, _ = config_from_dict(sd.our_preset(Path("m"), tmp_path, tmp_path / "o", 2, 11, s))
    assert cfg.network_train_unet_only


def test_only_full_size_archs_and_the_carried_packages_stay_on_the_path(
    script, tmp_path, monkeypatch
) -> None:
    sd = script("bench_sdscripts")
    with pytest.raises(SystemExit):
        sd.settings(argparse.Namespace(arch="tiny-sdxl"))
    monkeypatch.setenv("PYTHONPATH", "/tmp/site")  # gpu_check.sh's wheels
    s = sd.settings(argparse.Namespace(arch="sdxl", device="cuda"))
    files = {"model": Path("m"), "data": tmp_path, "tokenizers": tmp_path, "tmp": tmp_path}
    sides = sd.sides(s, Path("/sd"), "/py", files, 8, 11)
    assert sides["ours"][1]["PYTHONPATH"] == f"{sd.ROOT}{os.pathsep}/tmp/site"
    command, env, cwd = sides["reference"]
    assert command[:2] == ["/py", "/sd/sdxl_train_network.py"] and cwd == Path("/sd")
    assert env["PYTHONPATH"] == f"/sd{os.pathsep}/tmp/site" and env["OMP_NUM_THREADS"] == "8"
    assert json.loads((tmp_path / "ours.json").read_text())["sdxl"] is True
    assert env.get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")  # cuda: as given
    cpu = sd.sides(sd.settings(), Path("/sd"), "/py", files, 2, 11)
    assert all(
        env["CUDA_VISIBLE_DEVICES"] == "" for _, env, _ in cpu.values()
    )  # --device cpu even on a GPU box


def test_the_random_checkpoint_has_the_sdxl_layout(script, tmp_path: Path) -> None:
    from safetensors import safe_open

    path = tmp_path / "m.safetensors"
    script("bench_sdscripts").write_model(path, arch="tiny-sdxl")  # the full-size one is the same code
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
        assert f.get_tensor(next(iter(keys))).dtype.is_floating_point
    for prefix in (
        "model.diffusion_model.",
        "first_stage_model.",
        "conditioner.embedders.0.transformer.",
        "conditioner.embedders.1.model.",
    ):  # what sd-scripts' sdxl_model_util reads
        assert any(k.startswith(prefix) for k in keys), prefix
