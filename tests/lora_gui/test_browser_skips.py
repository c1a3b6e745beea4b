"""Without chromium (or playwright) the browser tests skip, saying how to get it: the
README's test command on a fresh machine ends without an error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BROWSER_TESTS = [
    "tests/lora_gui/test_browser.py",
    "tests/lora_gui/test_browser_files.py",
    "tests/lora_gui/test_browser_signals.py",
]


def test_the_browser_tests_skip_with_the_reason_when_chromium_is_missing(tmp_path):
    env = {
        **os.environ,
        "LORA_STUDIO_CHROMIUM": str(tmp_path / "no-chromium"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *BROWSER_TESTS]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "chromium not found: apt-get install chromium" in output, output[-3000:]
    assert " error" not in output and " passed" not in output, output[-3000:]
