"""Presets: flat JSON with Kohya key names. Kohya GUI presets load as they are.

Unknown keys are reported, never silently dropped; secrets are never written.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..kohya_keys import migrate_kohya
from .model import TrainingConfig
from .specs import FIELDS, SECRET_KEYS
from .validate import validate_values


def config_from_dict(raw: dict[str, Any]) -> tuple[TrainingConfig, list[str]]:
    """Migrate, split off unknown keys, validate. Returns (config, warnings)."""
    if not isinstance(raw, dict):
        from .validate import ConfigError, Problem
        raise ConfigError([Problem("preset", "must be a JSON object of settings")])
    values, notes = migrate_kohya(raw, FIELDS)
    unknown = sorted(k for k in values if k not in FIELDS)
    known = {k: v for k, v in values.items() if k in FIELDS}
    cfg = validate_values(known)
    from .checks import check_config
    warnings = [f"migrated: {n}" for n in notes]
    if unknown:
        warnings.append(f"{len(unknown)} key(s) not used by this trainer (ignored): "
                        + ", ".join(unknown))
    warnings.extend(check_config(cfg)[1])
    return cfg, warnings


def load_preset(path: str | Path) -> tuple[TrainingConfig, list[str]]:
    """Read a preset or Kohya GUI config file (JSON)."""
    from .validate import ConfigError, Problem
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError([Problem("preset", f"file not found: {p}")]) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError([Problem("preset", f"{p} is not a readable JSON file ({exc})")]) from None
    return config_from_dict(raw)


def preset_dict(cfg: TrainingConfig) -> dict[str, Any]:
    """All settings as a flat dict, without secrets."""
    return {k: v for k, v in cfg.model_dump().items() if k not in SECRET_KEYS}


def save_preset(cfg: TrainingConfig, path: str | Path) -> Path:
    """Write the preset atomically (a crash never leaves half a file)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(preset_dict(cfg), indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
