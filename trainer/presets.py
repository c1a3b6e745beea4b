"""Preset files: the one reader and writer of preset JSON, for the CLI, the run and the GUI.

A preset is flat JSON with Kohya key names (`trainer.config.presets`); a Kohya GUI config
file reads as one. Files are written atomically (`trainer.files`) and never hold secrets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.config import ConfigError, Problem, TrainingConfig, config_from_dict, preset_dict
from trainer.files import write_file_atomic


def read_preset_json(path: str | Path) -> Any:
    """The file's JSON value. Raises ConfigError naming the file when it cannot be read."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError([Problem("preset", f"file not found: {p}")]) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError([Problem("preset", f"{p} is not a readable JSON file ({exc})")]) from None
    except RecursionError:
        raise ConfigError(
            [Problem("preset", f"{p} is nested too deeply to be a preset (a preset is a flat object)")]
        ) from None


def load_preset(path: str | Path) -> tuple[TrainingConfig, list[str]]:
    """Read a preset or Kohya GUI config file (JSON) -> (config, warnings)."""
    return config_from_dict(read_preset_json(path))


def save_preset(cfg: TrainingConfig, path: str | Path) -> Path:
    """Write the preset atomically (a crash never leaves half a file)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(preset_dict(cfg), indent=2, ensure_ascii=False) + "\n"
    return write_file_atomic(p, text.encode("utf-8"))
