"""`scripts/setup.sh --dev` says how to get chromium when the browser tests would skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def installed_project(tmp: Path) -> Path:
    """A copy of setup.sh in a project whose .venv is already set up (nothing to install)."""
    (tmp / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp / "scripts" / "setup.sh")
    (tmp / "pyproject.toml").write_text("[project]\n", encoding="utf-8")
    python = tmp / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")  # "import torch" succeeds
    python.chmod(0o755)
    stamp = tmp / ".venv" / ".installed[dev]"
    stamp.touch()
    later = time.time() + 10
    os.utime(stamp, (later, later))
    return tmp


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("present", [False, True])
def test_setup_dev_says_how_to_get_chromium_when_it_is_missing(tmp_path, present):
    project = installed_project(tmp_path / "project")
    chromium = shutil.which("sh") if present else str(tmp_path / "no-chromium")
    env = {**os.environ, "LORA_STUDIO_CHROMIUM": chromium, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        ["bash", "scripts/setup.sh", "--dev"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    hinted = "chromium not found" in done.stdout and "apt-get install chromium" in done.stdout
    assert hinted is not present, done.stdout
