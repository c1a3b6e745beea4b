"""LoRA / LoCon network: the module, where it goes, and the Kohya names it is saved under."""

from .inject import LoRANetwork, find_targets, text_encoder_targets, unet_targets
from .kohya_names import KOHYA_PREFIXES, SgmLayout, kohya_name
from .lora import LoRAModule

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
