"""The one config schema: `TrainingConfig`, its field specs, validation and Kohya migration.

The bottom layer of the engine: imports nothing else of trainer (its pure rules live in
`trainer.config.rules`), so every other package may import it.

    cfg, warnings = config_from_dict(json.load(f))   # raises ConfigError listing every problem
    FIELDS["learning_rate"].help_ja                   # what the GUI shows
"""

from __future__ import annotations

from trainer.config.checks import check_config, output_name_problem, parse_resolution
from trainer.config.model import TrainingConfig
from trainer.config.presets import config_from_dict, preset_dict, split_settings
from trainer.config.problems import ConfigError, Problem
from trainer.config.schema import TABS, FieldSpec
from trainer.config.specs import FIELDS
from trainer.config.validate import validate_values

__all__ = [
    "FIELDS",
    "TABS",
    "ConfigError",
    "FieldSpec",
    "Problem",
    "TrainingConfig",
    "check_config",
    "config_from_dict",
    "output_name_problem",
    "parse_resolution",
    "preset_dict",
    "split_settings",
    "validate_values",
]
