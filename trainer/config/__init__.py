"""The one config schema: `TrainingConfig`, its field specs, validation and presets.

    cfg, warnings = config_from_dict(json.load(f))   # raises ConfigError listing every problem
    FIELDS["learning_rate"].help_ja                   # what the GUI shows
"""
from __future__ import annotations

from .checks import check_config, parse_resolution
from .model import TrainingConfig
from .presets import config_from_dict, load_preset, preset_dict, save_preset
from .schema import TABS, FieldSpec
from .specs import FIELDS
from .validate import ConfigError, Problem, validate_values

__all__ = [
    "FIELDS", "TABS", "ConfigError", "FieldSpec", "Problem", "TrainingConfig", "check_config",
    "config_from_dict", "load_preset", "parse_resolution", "preset_dict", "save_preset",
    "validate_values",
]
