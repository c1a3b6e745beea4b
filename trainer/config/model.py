"""TrainingConfig: every setting, assembled from the per-area declarations.

Each area declares its settings once in its own module (a pydantic mixin); adding a
setting there adds it to the config, the CLI, presets and the GUI.
"""
from __future__ import annotations

from .advanced import AdvancedSettings
from .fields import BasicSettings
from .fields_launch import LaunchSettings
from .fields_network import NetworkOptionSettings
from .fields_samples import SampleSettings
from .fields_saving import SavingSettings
from .fields_speed import SpeedSettings
from .fields_state import StateSettings
from .fields_training import TrainingOptionSettings


class TrainingConfig(LaunchSettings, SpeedSettings, SampleSettings, SavingSettings, StateSettings, TrainingOptionSettings,
                     NetworkOptionSettings, AdvancedSettings, BasicSettings):  # fields come base-last first
    """One validated training configuration; the GUI, CLI and presets all build this."""
