"""Shared fixtures of the GUI tests; registers the `browser` marker."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gui_fakes

from gui_fakes import FakeApi, filled_values  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the real page in headless Chromium")


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def values(tmp_path: Path) -> dict:
    return filled_values(tmp_path)
