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
    budget = int(re.search(r"BUDGET=(\d+)", text).group(1))
    # A bench starts only if it can end within BUDGET; the tests run first.
    assert tests_limit < budget <= 8 * 60
    outputs = {"env.txt", "gpu_tests.log", "bench.log"} | {f"bench_{b[1]}.json" for b in _bench_lines()}
    assert len(outputs) <= 8  # what the device tool brings back
