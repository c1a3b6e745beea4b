"""The one error type of model detection and loading (imports nothing, so everyone can use it)."""

from __future__ import annotations


class ModelLoadError(Exception):
    """The model cannot be used; the message says why and what to do (show it, no traceback)."""
