"""scripts/bench_sdscripts.py: both programs get the same settings, and the shim times steps.

Running sd-scripts itself needs its own venv (the recipe is in the module's docstring), so
these tests check the parts: the arguments, our preset, and the step timing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

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
