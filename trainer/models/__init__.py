"""Detect and load Stable Diffusion models (SD 1.x, SD 2.x, SDXL), and build tiny ones.

`detect_model`, `ModelInfo` and `ModelLoadError` import no torch (the preflight plan uses
them); `load_models` and `SDModels` are imported on first use, since they need torch and
diffusers. Imports trainer.config and trainer.network (Kohya names of single-file
checkpoints) only.
"""

from __future__ import annotations

from typing import Any

from trainer.models.detect import ModelInfo, ModelLoadError, detect_model

__all__ = ["ModelInfo", "ModelLoadError", "SDModels", "detect_model", "load_models"]


def __getattr__(name: str) -> Any:
    if name in ("SDModels", "load_models"):
        from trainer.models import load

        return getattr(load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
