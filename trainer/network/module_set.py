"""What every network of ours does with its modules, whatever their kind (LoRA, LyCORIS)."""

from __future__ import annotations

from os import PathLike

from safetensors.torch import load_file
from torch import Tensor, nn


class ModuleSet(nn.Module):
    """A network that holds `te_loras` and `unet_loras`, each with apply_to / restore /
    multiplier: the verbs that do not depend on the module type live here once."""

    te_loras: list
    unet_loras: list
    multiplier: float

    @property
    def loras(self) -> list[nn.Module]:
        return self.te_loras + self.unet_loras

    def apply_to(self) -> None:
        """Route each wrapped layer through its module (the base layers stay at their paths)."""
        for lora in self.loras:
            lora.apply_to()

    def restore(self) -> None:
        """Give the wrapped layers their own forward back."""
        for lora in self.loras:
            lora.restore()

    def set_multiplier(self, m: float) -> None:
        """Strength of every module (0 = the base model, 1 = as trained)."""
        self.multiplier = m
        for lora in self.loras:
            lora.multiplier = m

    def weights_to_load(
        self, path_or_state_dict: str | PathLike | dict[str, Tensor]
    ) -> tuple[str, dict[str, Tensor], dict[str, Tensor], list[str], list[str]]:
        """(where they come from, the tensors, ours, our keys they lack, their keys we lack)
        for continuing from a file or state dict (`load_kohya_weights`)."""
        if isinstance(path_or_state_dict, dict):
            source, loaded = "state dict", path_or_state_dict
        else:
            source, loaded = str(path_or_state_dict), load_file(path_or_state_dict)
        own = self.state_dict()
        return source, loaded, own, sorted(set(own) - set(loaded)), sorted(set(loaded) - set(own))
