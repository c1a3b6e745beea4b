"""The Kohya GUI's "Additional parameters" text, read as settings, never run.

Kohya appends that text to the sd-scripts command line. Here it is split into
`--key value` / `--key=value` / `--flag` items (no shell, nothing executed); items naming
a setting of ours become that setting (they come last on Kohya's command line, so they
win there too), the rest are reported as not used. Imports nothing but trainer.kohya_keys.
"""
from __future__ import annotations

import shlex
from collections.abc import Container
from typing import Any

from .kohya_keys import _number

# sd-scripts argument names whose setting has another name here.
_RENAMED = {"optimizer_type": "optimizer", "resolution": "max_resolution"}
# sd-scripts flags that select a value of one of our settings.
_FLAG_VALUES = {"sdpa": ("xformers", "sdpa"), "xformers": ("xformers", "xformers"),
                "alpha_mask": ("masked_loss", True)}  # sd-scripts: the mask is the alpha channel
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
    notes = [f"additional_parameters: {name} = {value!r}" for name, value in found.items()]
    if unused:
        notes.append("additional_parameters: not used by this trainer (ignored): " + ", ".join(unused))
    return found, notes
