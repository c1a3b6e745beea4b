"""LoRA / LoCon network: the module, where it goes, the Kohya names it is saved under, the
LyCORIS types (lycoris-lora), block-wise ranks and learning rates applied to modules, and
the Kohya-format .safetensors file it is written to.

Imports trainer.config (its block and LyCORIS rules) and trainer.files only.
"""

from trainer.network.inject import LoRANetwork, find_targets, text_encoder_targets, unet_targets
from trainer.network.kohya_names import KOHYA_PREFIXES, SgmLayout, kohya_name
from trainer.network.lora import LoRAModule

__all__ = [
    "KOHYA_PREFIXES",
    "LoRAModule",
    "LoRANetwork",
    "SgmLayout",
    "find_targets",
    "kohya_name",
    "text_encoder_targets",
    "unet_targets",
]
