"""Secrets: which names hold one, and text with every secret replaced by ***.

Used wherever a person or a file can see text the user gave: notes about a Kohya preset,
the plan (text and --json), events, logs, LoRA metadata. A secret is found by the name it
is given under (`--huggingface_token=...`, `"wandb_api_key": "..."`) and by its shape
(Hugging Face, OpenAI, GitHub, Slack tokens; 40-hex API keys), whatever the name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A name that holds a secret: ..._token, api_key, apikey, secret, password, auth, credential.
SECRET_NAME = re.compile(r"(api_?key|secret|password|passwd|auth|credential|(^|[_-])token$)", re.IGNORECASE)
_SHAPES = re.compile(
    r"\b(hf_[A-Za-z0-9]{16,}|sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}"
    r"|xox[abpr]-[A-Za-z0-9-]{10,}|[0-9a-f]{40})\b"
)
# name=value, "name": "value" (JSON style) and --name value (command-line style).
_NAMED = re.compile(
    r"""(?P<key>--[A-Za-z0-9_-]+|[A-Za-z0-9_]+)(?P<sep>["']?\s*[:=]\s*["']?|(?<=[A-Za-z0-9_])\s+)"""
    r"""(?P<value>[^\s"',}]+)"""
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
        spaced = not match["sep"].strip()
        if spaced and not match["key"].startswith("--"):
            return match[0]  # prose: "the token is" is no assignment
        if not is_secret_name(match["key"]) or match["value"] == MASK:
            return match[0]
        return f"{match['key']}{match['sep']}{MASK}"

    text = _NAMED.sub(named, text)
    return _SHAPES.sub(MASK, text)
