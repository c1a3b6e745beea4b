"""scripts/gpu_check.sh, checked without a GPU: it parses, its bench runs are valid, and it fits."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from tests.helpers import ROOT

CHECK = ROOT / "scripts" / "gpu_check.sh"


def _bench_lines() -> list[list[str]]:
    return [
        shlex.split(line)
        for line in CHECK.read_text(encoding="utf-8").splitlines()
        if line.startswith("bench ")
    ]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("name", ["gpu_check.sh", "gpu_wheels.sh"])
def test_scripts_parse(name: str) -> None:
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / name)], check=True, timeout=30)


def test_every_bench_run_is_a_valid_command_and_the_issue_cases_are_there(script) -> None:
    bench = script("bench")
    cases = set()
    for _, name, limit, *args in _bench_lines():
        parsed = bench._args(["--device", "cuda", "--json", f"{name}.json", *args])
        cases.add((parsed.arch, parsed.batch, parsed.resolution))
        assert int(limit) > 0
    assert {("sd15", 1, 512), ("sd15", 8, 512), ("sdxl", 1, 1024)} <= cases


def test_worst_case_fits_in_eight_minutes_and_eight_files_come_back() -> None:
    text = CHECK.read_text(encoding="utf-8")
    tests_limit = int(re.search(r"timeout (\d+) \"\$PY\" -m pytest", text).group(1))
    cases_limit = int(re.search(r"timeout (\d+) \"\$PY\" scripts/gpu_cases.py", text).group(1))
    cases_budget = int(re.search(r"gpu_cases.py --out \"\$OUT\" --budget (\d+)", text).group(1))
    budget = int(re.search(r"BUDGET=(\d+)", text).group(1))
    # The cases, then the tests; a bench starts only if it can end within BUDGET.
    assert cases_budget < cases_limit and cases_limit + tests_limit < budget <= 8 * 60
    outputs = {"env.txt", "cases.json", "cases.log", "gpu_tests.log", "bench.log", "bench.json"}
    outputs.add("bench_sdscripts.json")
    assert '"$OUT/bench.json"' in text and '"$OUT/gpu_tests.log"' in text
    assert '"$OUT/bench_sdscripts.json"' in text
    assert len(outputs) <= 8  # what the device tool brings back


ISSUE_CASES = {  # issue 18, item 9: what the GPU check must exercise
    "fp16",
    "bf16",
    "full_fp16",
    "fp8_base",
    "mem_eff_attn",
    "te_checkpointing",
    "sdxl_fp16",
    "no_latent_cache",
    "sampling",
    "resume",
    "nccl_two_processes",
    "out_of_memory_message",
}


def test_the_cases_cover_the_issue_and_fit_their_budget(script) -> None:
    cases = script("gpu_cases").CASES
    assert ISSUE_CASES <= set(cases)
    assert all(0 < limit <= 120 for limit, _ in cases.values())


def test_the_driver_runs_each_case_in_its_own_process_and_skips_without_cuda(tmp_path) -> None:
    import json
    import sys

    import torch

    if torch.cuda.is_available():
        pytest.skip("checked on machines without CUDA")
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_cases.py"), "--out", str(tmp_path)]
    done = subprocess.run(
        [*cmd, "--only", "fp16,out_of_memory_message"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "cases.json").read_text(encoding="utf-8"))
    assert [(c["case"], c["status"], c["why"]) for c in summary["cases"]] == [
        ("fp16", "skipped", "no CUDA"),
        ("out_of_memory_message", "skipped", "no CUDA"),
    ]
    assert all("process_s" in c for c in summary["cases"])  # each ran in its own process
    # a case that would overrun the budget is not started
    subprocess.run([*cmd, "--only", "resume", "--budget", "5"], check=True, timeout=120)
    summary = json.loads((tmp_path / "cases.json").read_text(encoding="utf-8"))
    assert summary["cases"] == [{"case": "resume", "status": "skipped", "why": "too little time left"}]


def _sdscripts_lines() -> list[list[str]]:
    text = CHECK.read_text(encoding="utf-8").replace("\\\n", " ")
    return [shlex.split(line) for line in map(str.strip, text.splitlines()) if line.startswith("sdscripts ")]


def test_the_sd_scripts_settings_are_the_issue_s_and_fit_the_budget(script) -> None:
    bench, sd = script("bench"), script("bench_sdscripts")
    text = CHECK.read_text(encoding="utf-8")
    # how the function runs each one: on cuda, sd-scripts from .refs on the image's Python
    assert "bench.py --reference sd-scripts --device cuda" in text and "SD_SCRIPTS=.refs/sd-scripts" in text
    assert '--sd-scripts-python "$PY"' in text
    cases, limits = set(), 0
    for _, _name, limit, *args in _sdscripts_lines():
        parsed = bench._args(["--reference", "sd-scripts", "--device", "cuda", "--sd-scripts", "x", *args])
        s = sd.settings(parsed)
        cases.add((s["arch"], s["batch"], s["resolution"], s["gradient_checkpointing"], s["precision"]))
        limits += int(limit)
    assert cases == {
        ("sd15", 1, 512, False, "bf16"),
        ("sd15", 8, 512, False, "bf16"),
        ("sdxl", 1, 1024, True, "bf16"),
    }
    budget = int(re.search(r"BUDGET=(\d+)", text).group(1))
    assert limits + 30 <= budget  # alone (PARTS=sdscripts), after the wheels' install, they all fit


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_without_a_carried_sd_scripts_it_says_so_and_goes_on(tmp_path) -> None:
    import os
    import sys

    (tmp_path / "scripts").mkdir()
    shutil.copy(CHECK, tmp_path / "scripts" / "gpu_check.sh")  # a tree with no .refs/ (nor .whl/)
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PY": sys.executable, "PARTS": "sdscripts"}
    done = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "gpu_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sd-scripts comparison: not run: no sd-scripts checkout in .refs/sd-scripts" in done.stdout
    assert "sd-scripts sd15" not in done.stdout and "bench sd15" not in done.stdout
    assert not (tmp_path / "out" / "bench_sdscripts.json").exists()
