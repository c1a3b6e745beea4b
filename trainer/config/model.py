"""TrainingConfig: every setting, assembled from the per-area declarations.

Each area declares its settings once in its own module of `trainer.config.settings` (a
pydantic mixin); adding a setting there adds it to the config, the CLI, presets and the GUI.
"""

from __future__ import annotations

from pydantic import ConfigDict

from trainer.config.settings.advanced import AdvancedSettings
from trainer.config.settings.buckets_network import BucketNetworkSettings
from trainer.config.settings.captions import CaptionSettings
from trainer.config.settings.launch import LaunchSettings
from trainer.config.settings.network import NetworkOptionSettings
from trainer.config.settings.parameters import ParameterSettings
from trainer.config.settings.samples import SampleSettings
from trainer.config.settings.saving import SavingSettings
from trainer.config.settings.source_folders import SourceFolderSettings
from trainer.config.settings.speed import SpeedSettings
from trainer.config.settings.state import StateSettings
from trainer.config.settings.training import TrainingOptionSettings


class TrainingConfig(
    LaunchSettings,
    SpeedSettings,
    SampleSettings,
    SavingSettings,
    StateSettings,
    TrainingOptionSettings,
    NetworkOptionSettings,
    AdvancedSettings,
    CaptionSettings,
    BucketNetworkSettings,
    ParameterSettings,
    SourceFolderSettings,
):  # fields come base-last first: the order of the tabs
    """One validated training configuration; the GUI, CLI and presets all build this."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
