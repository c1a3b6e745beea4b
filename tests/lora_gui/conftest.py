"""Shared fixtures of the GUI tests (the `browser` marker is declared in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .gui_fakes import FakeApi, filled_values
from .gui_server import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium through Playwright, one per test module."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():  # before Playwright tries to launch it
        pytest.skip("chromium not found: apt-get install chromium")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def values(tmp_path: Path) -> dict:
    """Every field at its default, the required paths filled, valid on a CPU."""
    return filled_values(tmp_path)
