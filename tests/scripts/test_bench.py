"""scripts/bench.py: a two-step smoke run on the tiny model, and the settings it derives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def report(script, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    assert (
        script("bench").main(
            ["--arch", "tiny", "--steps", "2", "--warmup", "0", "--threads", "1", "--json", str(out)]
        )
        == 0
    )
    return json.loads(out.read_text(encoding="utf-8"))


def test_smoke_run_reports_both_sides_and_their_ratio(report) -> None:
    for side in ("ours", "reference"):
        r = report[side]
        assert len(r["step_times"]) == 2 and r["sec_per_step"] > 0
        assert r["images_per_sec"] == pytest.approx(2 / r["sec_per_step"], rel=1e-2)  # demo batch 2
        assert r["peak_mem_gib"] > 0.05  # torch alone is more than 50 MB
    assert report["ratio"] == pytest.approx(
        report["ours"]["sec_per_step"] / report["reference"]["sec_per_step"], rel=1e-2
    )
    assert report["settings"]["batch"] == 2 and report["settings"]["resolution"] == 128
    assert report["machine"]["cores"] >= 1 and report["command"].startswith("python scripts/bench.py")


def test_both_sides_train_the_same_lora(report) -> None:
    # Same layers, rank and parts: the reference's peft adapters match our targets exactly.
    ours, ref = report["ours"], report["reference"]
    assert ours["lora_layers"] == ref["lora_layers"] > 0
    assert ours["trainable_params"] == ref["trainable_params"]
    # The demo trains the text encoder, so only the latents can be cached on our side.
    assert ours["latent_cache"] and not ours["text_cache"]
    assert not ref["latent_cache"] and not ref["text_cache"]


def test_arch_defaults_follow_the_issue_targets(script, tmp_path: Path) -> None:
    bench = script("bench")
    sd15, res = bench.settings_for(bench._args(["--arch", "sd15", "--device", "cuda"]), tmp_path, tmp_path)
    assert res == 512 and sd15["network_dim"] == 16 and sd15["mixed_precision"] == "bf16"
    assert sd15["network_train_unet_only"] and not sd15["gradient_checkpointing"]
    sdxl, res = bench.settings_for(bench._args(["--arch", "sdxl", "--device", "cuda"]), tmp_path, tmp_path)
    assert res == 1024 and sdxl["gradient_checkpointing"] and sdxl["sdxl"]
    tiny, res = bench.settings_for(
        bench._args(["--set", "torch_compile=true", "--batch", "4"]), tmp_path, tmp_path
    )
    assert res == 128 and tiny["train_batch_size"] == 4 and tiny["torch_compile"] is True
    assert tiny["mixed_precision"] == "no" and not tiny["network_train_unet_only"]


def test_each_side_chooses_its_own_thread_settings(script, monkeypatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert "OMP_WAIT_POLICY" not in script("bench").side_env()
