"""Shared fixtures of the GUI tests; registers the `browser` marker."""
from __future__ import annotations

from pathlib import Path

import pytest

from .gui_fakes import FakeApi, filled_values


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the real page in headless Chromium")


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def values(tmp_path: Path) -> dict:
    """Every field at its default, the required paths filled, valid on a CPU."""
    return filled_values(tmp_path)
