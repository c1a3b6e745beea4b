"""verify, and the command line: module counts by part, ranks, alphas, precision,
readable metadata, key-name checks; `python -m trainer.tools` exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.helpers import ROOT
from tests.trainer.tools_helpers import full_size_sd15_lora, make_lora
from trainer.network.lora_file import save_lora
from trainer.tools.__main__ import main
from trainer.tools.verify import inspect_lora

TAGS = {"5_mychar": {"mychar": 10, "smile": 4, "red hair": 7}}


@pytest.fixture(scope="module")
def locon(models, tmp_path_factory):
    meta = {
        "ss_tag_frequency": json.dumps(TAGS),
        "ss_learning_rate": "0.0001",
        "ss_base_model_version": "sd_v1",
    }
    path = tmp_path_factory.mktemp("v") / "locon.safetensors"
    return make_lora(models, path, rank=8, alpha=4, conv_rank=4, dtype=torch.float16, metadata=meta)


def test_json_reports_counts_ranks_and_metadata(locon, capsys):
    assert main(["verify", str(locon), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    parts = info["modules_by_part"]
    assert info["modules"] == parts["text_encoder"] + parts["unet"] > 0
    assert parts["conv"] > 0 and set(info["ranks"]) == {"4", "8"}
    assert info["alphas"].keys() == {"1.0", "4.0"} and set(info["precision"]) == {"F16"}
    assert info["architecture"] == "SD 1.x" and info["algorithm"].startswith("LoCon")
    assert info["kohya_names"] is True
    assert info["metadata"]["ss_tag_frequency"] == TAGS  # JSON values read as JSON
    assert info["tag_frequency_top"]["5_mychar"][0] == ["mychar", 10]


def test_text_report_for_people(locon, capsys):
    assert main(["verify", str(locon)]) == 0
    text = capsys.readouterr().out
    assert "modules:" in text and "every key follows sd-scripts' naming" in text
    assert "top tags in 5_mychar: mychar (10), red hair (7), smile (4)" in text


def test_full_size_sd15_counts(tmp_path):
    info = inspect_lora(full_size_sd15_lora(tmp_path / "full.safetensors"))
    assert (info["modules"], info["modules_by_part"]["text_encoder"], info["modules_by_part"]["unet"]) == (
        264,
        72,
        192,
    )


def test_other_key_names_are_reported(tmp_path, capsys):
    path = save_lora(
        tmp_path / "peft.safetensors",
        {"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": torch.ones(2, 4)},
        {},
        dtype=torch.float32,
    )
    assert main(["verify", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kohya_names"] is False and "lora_unet_" in info["naming_problems"][0]
    assert (
        main(
            ["resize", "--model", str(path), "--new_rank", "1", "--save_to", str(tmp_path / "o.safetensors")]
        )
        == 2
    )
    assert "sd-scripts' key names" in capsys.readouterr().err


def test_command_line_entry_point(locon, tmp_path):
    bad = subprocess.run(
        [sys.executable, "-m", "trainer.tools", "resize", "--model", str(locon), "--new_rank", "0",
         "--save_to", str(tmp_path / "o.safetensors")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "--new_rank 0" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "o.safetensors").exists()


def test_prefixes_are_the_trainers():
    from trainer.network.kohya_names import KOHYA_PREFIXES
    from trainer.tools import lora_io

    assert lora_io.KOHYA_PREFIXES == KOHYA_PREFIXES


def test_every_command_runs_from_the_command_line(locon, tiny_model, tiny_single_file, tmp_path, capsys):
    out = {n: str(tmp_path / f"{n}.safetensors") for n in ("r", "c", "s", "x", "b")}
    assert main(["resize", "--model", str(locon), "--new_rank", "2", "--save_to", out["r"], "--verbose"]) == 0
    assert (
        main(["merge", "--models", str(locon), out["r"], "--ratios", "1", "0.5", "--save_to", out["c"]]) == 0
    )
    assert main(["merge", "--models", str(locon), out["r"], "--new_rank", "3", "--save_to", out["s"]]) == 0
    folder = str(tiny_model("sd15"))
    assert (
        main(["extract", "--model_org", folder, "--model_tuned", folder, "--dim", "2", "--save_to", out["x"]])
        == 0
    )
    base = str(tiny_single_file("sd15"))
    assert (
        main(
            [
                "merge",
                "--models",
                out["r"],
                "--base_model",
                base,
                "--save_to_checkpoint",
                "--save_to",
                out["b"],
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "rank 8 -> 2" in text and "ranks concatenated" in text and "SVD to rank 3" in text
    assert "U-Net only" in text and "baked 1 LoRA(s)" in text
    assert [inspect_lora(out[n])["ranks"] for n in ("r", "s")] == [{"2": 152}, {"3": 152}]
    assert main(["merge", "--models", str(locon), "--save_to_checkpoint", "--save_to", out["b"]]) == 2
    assert "--save_to_checkpoint needs --base_model" in capsys.readouterr().err
