"""Secrets: which names hold one, and text with every secret replaced by ***.

Used wherever a person or a file can see text the user gave: notes about a Kohya preset,
the plan (text and --json), events, logs, LoRA metadata. A secret is found by the name it
is given under (`--huggingface_token=...`, `"wandb_api_key": "..."`) and by its shape
(Hugging Face, OpenAI, GitHub, Slack tokens; 40-hex API keys), whatever the name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# A name that holds a secret: ..._token, api_key, apikey, secret, password, auth, credential.
SECRET_NAME = re.compile(r"(api_?key|secret|password|passwd|auth|credential|(^|[_-])token$)", re.IGNORECASE)
_SHAPES = re.compile(
    r"\b(hf_[A-Za-z0-9]{16,}|sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}"
    r"|xox[abpr]-[A-Za-z0-9-]{10,}|[0-9a-f]{40})\b"
)
# name=value and "name": "value" (JSON style); --name value (command-line style: the value
# is the next word unless that is another --flag).
_NAMED = re.compile(
    r"""(?P<key>--[A-Za-z0-9_-]+|[A-Za-z0-9_]+)(?P<sep>["']?\s*[:=]\s*["']?)(?P<value>[^\s"',}]+)"""
    r"""|(?P<flag>--[A-Za-z0-9_-]+)(?P<space>\s+)(?P<arg>(?!--)[^\s"',}]+)"""
)
MASK = "***"


def is_secret_name(name: str) -> bool:
    """Whether a setting or argument of this name holds a secret."""
    return bool(SECRET_NAME.search(name.lstrip("-")))


def redact_text(text: str, values: Iterable[str] = ()) -> str:
    """`text` with secrets replaced by ***: every value in `values` (4 characters or more),
    every value given under a secret name, and every token-shaped word."""
    for value in values:
        if value and len(value) >= 4:
            text = text.replace(value, MASK)

    def named(match: re.Match) -> str:
        key, sep, value = (
            match.group("key", "sep", "value") if match["key"] else match.group("flag", "space", "arg")
        )
        if not is_secret_name(key) or value == MASK:
            return match[0]
        return f"{key}{sep}{MASK}"

    text = _NAMED.sub(named, text)
    return _SHAPES.sub(MASK, text)


def secret_values(cfg: object) -> list[str]:
    """The values of a config's secret settings (tokens, API keys), to redact by value."""
    from trainer.config.specs import SECRET_KEYS

    return [str(getattr(cfg, key, "") or "") for key in sorted(SECRET_KEYS)]


def redact_data(value: Any, values: Iterable[str] = ()) -> Any:
    """`value` (text, or dicts and lists holding text: an event, the plan's JSON) with every
    text redacted by `redact_text`; numbers and switches as they are."""
    values = list(values)
    if isinstance(value, str):
        return redact_text(value, values)
    if isinstance(value, dict):
        return {k: redact_data(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_data(v, values) for v in value)
    return value
