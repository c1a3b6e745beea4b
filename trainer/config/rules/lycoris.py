"""The LyCORIS types and options, as the Kohya GUI hands them to lycoris-lora.

Pure Python (no torch), so the config checks can use it. For each of our LoRA types:
its lycoris algorithm, and the options the Kohya GUI sends with it (an option a type
does not get there is left at lycoris' default here too). Our option names are the
Kohya GUI's preset keys; lycoris spells some of them differently:

    dora_wd -> weight_decompose   use_cp -> use_tucker (either turns it on)
    constrain -> constraint       unit -> block_size
"""

from __future__ import annotations

from typing import Any

# Our LoRA_type -> lycoris algorithm.
ALGOS = {
    "LyCORIS/LoCon": "locon",
    "LyCORIS/LoHa": "loha",
    "LyCORIS/LoKr": "lokr",
    "LyCORIS/iA3": "ia3",
    "LyCORIS/BOFT": "boft",
    "LyCORIS/Diag-OFT": "diag-oft",
    "LyCORIS/DyLoRA": "dylora",
    "LyCORIS/GLoRA": "glora",
    "LyCORIS/Native Fine-Tuning": "full",
}

# Each option with its default: lycoris' own, except `unit`, which the Kohya GUI always
# sends (1) where lycoris would take 4.
OPTION_DEFAULTS: dict[str, Any] = {
    "preset": "full",
    "dora_wd": False,
    "factor": -1,
    "decompose_both": False,
    "use_tucker": False,
    "use_scalar": False,
    "train_norm": False,
    "use_cp": False,
    "train_on_input": False,
    "rank_dropout_scale": False,
    "bypass_mode": False,
    "constrain": 0.0,
    "rescaled": False,
    "unit": 1,
}

_LORA_LIKE = frozenset(
    {"use_tucker", "use_scalar", "dora_wd", "bypass_mode", "rank_dropout_scale", "train_norm"}
)
# What the Kohya GUI passes with each type (besides preset, the dims and the dropouts).
TYPE_OPTIONS: dict[str, frozenset[str]] = {
    "LyCORIS/LoCon": _LORA_LIKE,
    "LyCORIS/LoHa": _LORA_LIKE,
    "LyCORIS/LoKr": _LORA_LIKE | {"factor", "use_cp", "decompose_both"},
    "LyCORIS/iA3": frozenset({"train_on_input"}),
    "LyCORIS/BOFT": frozenset({"use_tucker", "rank_dropout_scale", "train_norm"}),
    "LyCORIS/Diag-OFT": frozenset(
        {"use_tucker", "rank_dropout_scale", "constrain", "rescaled", "train_norm"}
    ),
    "LyCORIS/DyLoRA": frozenset({"use_tucker", "unit", "train_norm"}),
    "LyCORIS/GLoRA": frozenset({"use_tucker", "rank_dropout_scale", "train_norm"}),
    "LyCORIS/Native Fine-Tuning": frozenset({"rank_dropout_scale", "train_norm"}),
}
# Our name -> the network argument's name (lycoris' and ss_network_args').
KOHYA_ARG_NAMES = {"constrain": "constraint", "unit": "block_size"}
_LYCORIS_KWARG_NAMES = {**KOHYA_ARG_NAMES, "dora_wd": "weight_decompose"}


def used_options(lora_type: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options `lora_type` uses, by our names (the preset included)."""
    if lora_type not in ALGOS:
        raise ValueError(f"{lora_type!r} is not a LyCORIS type; choose one of {', '.join(ALGOS)}")
    unknown = set(options) - set(OPTION_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown LyCORIS option(s) {sorted(unknown)}; known: {sorted(OPTION_DEFAULTS)}")
    full = {**OPTION_DEFAULTS, **options}
    return {k: full[k] for k in OPTION_DEFAULTS if k == "preset" or k in TYPE_OPTIONS[lora_type]}


def lycoris_kwargs(lora_type: str, options: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for lycoris' network (everything but the preset)."""
    used = used_options(lora_type, options)
    kwargs = {_LYCORIS_KWARG_NAMES.get(k, k): v for k, v in used.items() if k not in ("preset", "use_cp")}
    kwargs["use_tucker"] = bool(used.get("use_tucker") or used.get("use_cp"))
    kwargs.setdefault("use_scalar", False)
    kwargs.setdefault("train_norm", False)
    return kwargs


def kohya_args(lora_type: str, options: dict[str, Any]) -> dict[str, str]:
    """The options as the Kohya GUI writes them into network_args (values as strings)."""
    return {KOHYA_ARG_NAMES.get(k, k): str(v) for k, v in used_options(lora_type, options).items()}
