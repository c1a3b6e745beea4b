"""Read a Kohya GUI (kohya_ss) preset as it is: old keys migrated, strings made values.

The output is a plain dict for `trainer.config.config_from_dict`, plus notes that say what
was changed. The Kohya GUI's "Additional parameters" text is read here too, as settings,
never run: Kohya appends it to the sd-scripts command line; here it is split into
`--key value` / `--key=value` / `--flag` items (no shell, nothing executed); items naming a
setting of ours become that setting (they come last on Kohya's command line, so they win
there too), the rest are reported as not used.
"""

from __future__ import annotations

import shlex
from collections.abc import Container
from typing import Any

from trainer.config.secrets import MASK, is_secret_name, redact_text
from trainer.config.specs import FIELDS

# Kohya writes numbers as strings in older presets (an empty string there meant "default"):
# every numeric setting of the schema, and the Kohya-only percentage that maps onto one.
_NUMERIC_STRING_KEYS = frozenset(
    {name for name, spec in FIELDS.items() if spec.type in (int, float)} | {"stop_text_encoder_training_pct"}
)

# Keys only the Kohya GUI writes: a file with one of them comes from it (30 of its 31
# shipped LoRA presets have one), and gets its values' Kohya meaning (_migrate_kohya_values).
KOHYA_GUI_KEYS = frozenset(
    {
        "additional_parameters",
        "lora_network_weights",
        "no_token_padding",
        "log_with",
        "sdxl_no_half_vae",
        "sdxl_cache_text_encoder_outputs",
        "conv_alphas",
        "conv_dims",
        "stop_text_encoder_training_pct",
        "model_list",
        "save_as_bool",
        "use_wandb",
        "use_8bit_adam",
        "num_machines",
        "multi_gpu",
        "dynamo_backend",
        "extra_accelerate_launch_args",
    }
)

# Kohya keys that need no setting here: what this trainer does instead.
_HANDLED = {
    "sdxl_no_half_vae": "the SDXL VAE always runs in float32 under fp16 here",
    "no_half_vae": "the SDXL VAE always runs in float32 under fp16 here",
    "highvram": "models are kept on the GPU only while they are needed",
    "lowvram": "models are kept on the GPU only while they are needed",
    "skip_cache_check": "the latent cache is checked by its key, which costs no time",
    "multi_gpu": "num_processes decides (2 or more starts accelerate on several GPUs)",
    "model_list": "the Kohya GUI's model menu; the model is its path here",
    "save_as_bool": "the Kohya GUI's own switch; save_model_as decides",
}


def _migrate_renamed(values: dict[str, Any], notes: list[str]) -> None:
    """Keys that older or newer Kohya GUIs spell differently -> ours (in place)."""
    weights = values.pop("lora_network_weights", None)
    if weights and not values.get("network_weights"):
        values["network_weights"] = weights
        notes.append("lora_network_weights -> network_weights")
    for old_key, new_key in (("conv_dims", "conv_block_dims"), ("conv_alphas", "conv_block_alphas")):
        value = values.pop(old_key, None)  # older Kohya GUIs' names of the conv block lists
        if value and not values.get(new_key):
            values[new_key] = value
            notes.append(f"{old_key} -> {new_key}")
    sdxl_cache = values.pop("sdxl_cache_text_encoder_outputs", None)
    if sdxl_cache is True and values.get("sdxl") and "cache_text_encoder_outputs" not in values:
        values["cache_text_encoder_outputs"] = True
        notes.append("sdxl_cache_text_encoder_outputs -> cache_text_encoder_outputs")
    backend = values.pop("dynamo_backend", None)
    if isinstance(backend, str) and backend.lower() not in ("", "no") and "torch_compile" not in values:
        values["torch_compile"] = True
        notes.append(f"dynamo_backend {backend!r} -> torch_compile (the U-Net blocks are compiled)")
    if values.get("log_with") in ("tensorboard", ""):
        values.pop("log_with")  # TensorBoard is what logging_dir writes
    machines = values.get("num_machines")
    if machines in (1, "1", None, ""):
        values.pop("num_machines", None)  # one machine is all this trainer runs on
    for key, instead in _HANDLED.items():
        if key in values:
            values.pop(key)
            notes.append(f"{key}: not needed ({instead})")


def _migrate_quotes(values: dict[str, Any], notes: list[str]) -> None:
    """The Kohya GUI strips double quotes from these before passing them on."""
    for key in ("optimizer_args", "lr_scheduler_args"):
        text = values.get(key)
        if isinstance(text, str) and '"' in text:
            values[key] = " ".join(text.replace('"', " ").split())  # "d0=1e-5" is d0=1e-5
            notes.append(f"{key}: quotes removed -> {values[key]!r}")
    kind = values.get("lr_scheduler_type")
    if isinstance(kind, str) and (kind != kind.strip() or '"' in kind):
        values["lr_scheduler_type"] = kind.replace('"', "").strip()


def _migrate_kohya_values(values: dict[str, Any], notes: list[str]) -> None:
    """Values a Kohya GUI file may hold that this trainer refuses in its own presets (a
    save-every of 0, a bucket step of 1, a side not a multiple of 64): each is changed to
    the nearest that works here, with a note. Only for files from the Kohya GUI."""
    if values.get("save_every_n_epochs") == 0:  # Kohya: 0 = no intermediate files
        # the setting's own maximum: more epochs than any run
        never = int(FIELDS["save_every_n_epochs"].maximum)
        values["save_every_n_epochs"] = never
        notes.append(
            f"save_every_n_epochs: 0 (Kohya: only the final file) -> {never}, which saves "
            "only the final file here"
        )
    steps = values.get("bucket_reso_steps")
    if isinstance(steps, int) and not isinstance(steps, bool) and 0 < steps < 8:
        # sd-scripts accepts it for SD, but buckets must divide into whole latents (/8)
        values["bucket_reso_steps"] = 8
        notes.append(
            f"bucket_reso_steps: {steps} -> 8, the finest step whose buckets divide into whole latents"
        )
    reso = values.get("max_resolution")
    if isinstance(reso, str):
        parts = [p.strip() for p in reso.split(",")]
        if len(parts) in (1, 2) and all(p.isdigit() and int(p) >= 64 for p in parts):
            rounded = ",".join(str(int(p) - int(p) % 64) for p in parts)
            if rounded != ",".join(parts):
                values["max_resolution"] = rounded
                notes.append(f"max_resolution: {reso!r} -> {rounded!r} (each side a multiple of 64)")


def _migrate_training_options(values: dict[str, Any], notes: list[str]) -> None:
    """Kohya spellings of the optimizer / network / text-encoder options -> ours (in place)."""
    if "stop_text_encoder_training_pct" in values:
        # Newer kohya_ss files name the percentage so; older LoRA presets use the plain key.
        pct = values.pop("stop_text_encoder_training_pct")
        if "stop_text_encoder_training" not in values or not values["stop_text_encoder_training"]:
            values["stop_text_encoder_training"] = pct
    if values.get("LoRA_type") == "LoCon":
        values["LoRA_type"] = "LyCORIS/LoCon"  # the Kohya GUI runs "LoCon" as lycoris' LoCon
        notes.append("LoRA_type: 'LoCon' -> 'LyCORIS/LoCon'")
    kohya_native = {
        "Kohya LoHa": "LyCORIS/LoHa",
        "Kohya LoKr": "LyCORIS/LoKr",
        "Kohya DyLoRA": "LyCORIS/DyLoRA",
    }
    if isinstance(values.get("LoRA_type"), str) and values["LoRA_type"] in kohya_native:
        # sd-scripts' own versions of the same methods; lycoris-lora trains them here
        old, values["LoRA_type"] = values["LoRA_type"], kohya_native[values["LoRA_type"]]
        notes.append(
            f"LoRA_type: {old!r} -> {values['LoRA_type']!r} (the same method, LyCORIS' implementation)"
        )
    for key in ("down_lr_weight", "mid_lr_weight", "up_lr_weight"):
        value = values.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values[key] = str(value)
        elif isinstance(value, (list, tuple)):
            values[key] = ",".join(str(v) for v in value)


def _number(text: str) -> Any:
    """'1e-4' -> 0.0001, '10' -> 10; anything else is returned unchanged for validation to name."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


# sd-scripts argument names whose setting has another name here.
_RENAMED = {"optimizer_type": "optimizer", "resolution": "max_resolution"}
# sd-scripts flags that select a value of one of our settings.
_FLAG_VALUES = {
    "sdpa": ("xformers", "sdpa"),
    "xformers": ("xformers", "xformers"),
    "alpha_mask": ("masked_loss", True),
}  # sd-scripts: the mask is the alpha channel
# Arguments that take several words (key=value each); every other one takes at most one.
_MANY_WORDS = frozenset({"optimizer_args", "lr_scheduler_args", "network_args"})


def _value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return _number(text)


def _tokens(text: str) -> list[str]:
    """Shell-like words, keeping Windows backslashes (C:\\data stays as written)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.escape = ""  # a backslash is a path separator on Windows, not an escape
    return list(lexer)


def parse_additional_parameters(text: str, known: Container[str]) -> tuple[dict[str, Any], list[str]]:
    """-> (settings found, notes). A note names each item that is not used and why."""
    try:
        words = _tokens(text or "")
    except ValueError as exc:  # an unclosed quote
        return {}, [f"additional_parameters: could not be read ({exc}); nothing in it is used"]
    found: dict[str, Any] = {}
    unused: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("--"):
            unused.append(word)
            continue
        key, eq, value = word[2:].partition("=")
        key = key.replace("-", "_")
        values: list[str] = [value] if eq else []
        many = _RENAMED.get(key, key) in _MANY_WORDS
        while not eq and i < len(words) and not words[i].startswith("--") and (many or not values):
            values.append(words[i])
            i += 1
        if key in _FLAG_VALUES and not values:
            name, chosen = _FLAG_VALUES[key]
            found[name] = chosen
            continue
        name = _RENAMED.get(key, key)
        if name not in known:
            unused.append(word if eq else " ".join(["--" + key, *values]))
            continue
        if not values:
            found[name] = True
        elif len(values) == 1:
            found[name] = _value(values[0])
        else:
            found[name] = " ".join(values)  # e.g. optimizer_args: several key=value words
    notes = [
        f"additional_parameters: {name} = {MASK if is_secret_name(name) else repr(value)}"
        for name, value in found.items()
    ]
    if unused:
        ignored = redact_text(", ".join(unused))
        notes.append("additional_parameters: not used by this trainer (ignored): " + ignored)
    return found, notes


def migrate_kohya(raw: dict[str, Any], known: Container[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """Turn a kohya_ss preset into our flat dict; returns (values, notes about changes).

    `known`: our setting names, so that "Additional parameters" items that name one of
    them become that setting (parse_additional_parameters); the others are named in a note."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in raw.items():
        if key == "use_8bit_adam":
            if value is True and "optimizer" not in raw:
                values["optimizer"] = "AdamW8bit"
                notes.append("use_8bit_adam: true -> optimizer 'AdamW8bit'")
            continue
        if key == "xformers" and isinstance(value, bool):
            values["xformers"] = "xformers" if value else "sdpa"
            notes.append(f"xformers: {value} -> '{values['xformers']}'")
            continue
        if key in _NUMERIC_STRING_KEYS and value is None:
            continue  # Kohya writes null for an unset number: its default
        if key in _NUMERIC_STRING_KEYS and isinstance(value, str) and value == value.strip():
            if value == "":
                continue  # Kohya's empty field = its default
            values[key] = _number(value)
            continue
        values[key] = value
    _migrate_renamed(values, notes)
    _migrate_training_options(values, notes)
    _migrate_quotes(values, notes)
    if any(key in raw for key in KOHYA_GUI_KEYS):
        _migrate_kohya_values(values, notes)
    extra = values.pop("additional_parameters", "")
    if isinstance(extra, str) and extra.strip():
        found, extra_notes = parse_additional_parameters(extra, known)
        values.update(found)  # last on Kohya's command line, so they win there too
        notes.extend(extra_notes)
    if known:
        # A Kohya switch we lack that is off (false / empty) asks for nothing: not worth a warning.
        for key in [
            k
            for k, v in values.items()
            if k not in known
            and v in (False, "", None)
            and not (isinstance(v, int) and not isinstance(v, bool))
        ]:
            values.pop(key)
    if values.get("seed") in (-1,):
        values.pop("seed")
        notes.append("seed: -1 (random in Kohya) -> the default fixed seed")
    return values, notes
