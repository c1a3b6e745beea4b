"""The tabs, and the choices of the settings that pick one of a list (Kohya's spellings)."""

from __future__ import annotations

SRC, FOLD, PARAM, ADV = "Source Model", "Folders", "Parameters", "Advanced"

# Kohya's spellings; the bitsandbytes, learning-rate-free and schedule-free families are
# listed in trainer.config.rules.optimizer_args, the class behind each name in trainer.optim.optimizers.
OPTIMIZERS = (
    "AdamW",
    "AdamW8bit",
    "PagedAdamW8bit",
    "PagedAdamW32bit",
    "Adafactor",
    "Lion",
    "Lion8bit",
    "PagedLion8bit",
    "SGDNesterov",
    "SGDNesterov8bit",
    "Prodigy",
    "DAdaptAdam",
    "DAdaptation",
    "DAdaptAdamPreprint",
    "DAdaptAdaGrad",
    "DAdaptAdan",
    "DAdaptAdanIP",
    "DAdaptLion",
    "DAdaptSGD",
    "AdamWScheduleFree",
    "RAdamScheduleFree",
    "SGDScheduleFree",
    "bitsandbytes.optim.AdEMAMix8bit",
    "bitsandbytes.optim.PagedAdEMAMix8bit",
    "pytorch_optimizer.CAME",
    "prodigyplus.ProdigyPlusScheduleFree",
)
SCHEDULERS = (
    "constant",
    "constant_with_warmup",
    "cosine",
    "cosine_with_restarts",
    "linear",
    "polynomial",
    "adafactor",
    "cosine_with_min_lr",
    "inverse_sqrt",
    "warmup_stable_decay",
)
LORA_TYPES = (
    "Standard",
    "Kohya LoCon",
    "LoRA-FA",
    "LyCORIS/LoCon",
    "LyCORIS/LoHa",
    "LyCORIS/LoKr",
    "LyCORIS/iA3",
    "LyCORIS/BOFT",
    "LyCORIS/Diag-OFT",
    "LyCORIS/DyLoRA",
    "LyCORIS/GLoRA",
    "LyCORIS/Native Fine-Tuning",
)
PRECISIONS = ("no", "fp16", "bf16")
SAVE_PRECISIONS = ("fp16", "bf16", "float")
ATTENTION = ("sdpa", "xformers", "none")

NOISE_OFFSET_TYPES = ("Original", "Multires")
