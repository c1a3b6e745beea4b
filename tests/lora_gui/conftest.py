"""Shared fixtures of the GUI tests (the `browser` marker is declared in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .gui_fakes import FakeApi, filled_values


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def values(tmp_path: Path) -> dict:
    """Every field at its default, the required paths filled, valid on a CPU."""
    return filled_values(tmp_path)
