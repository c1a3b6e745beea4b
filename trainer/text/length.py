"""Captions longer than the text encoder reads: found at training start, named in a warning.

The tokenizer cuts a caption after `max_token_length` tokens (75, 150 or 225, without the
start and end tokens), so the end of a long caption is silently never trained: a tag at
the end of a 120-token caption does nothing at 75. The check needs the tokenizer, so it
runs once the models are loaded, over the unique captions (fast: tokenizing thousands
of captions takes well under a second).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

_NAMES_SHOWN = 10


def long_captions(
    captions: Iterable[tuple[Path, str]], tokenizer, max_token_length: int
) -> list[tuple[Path, int]]:
    """(image, token count) of every caption with more tokens than `max_token_length`."""
    items = list(captions)
    if not items:
        return []
    counts = [
        len(ids)
        for ids in tokenizer(
            [c for _, c in items], add_special_tokens=False, truncation=False, verbose=False
        )["input_ids"]
    ]
    return [(path, n) for (path, _), n in zip(items, counts, strict=True) if n > max_token_length]


def long_caption_warning(found: list[tuple[Path, int]], max_token_length: int) -> str | None:
    """One warning naming the files (the first few) and what to do, or None."""
    if not found:
        return None
    shown = ", ".join(f"{Path(p).name} ({n} tokens)" for p, n in found[:_NAMES_SHOWN])
    more = f" and {len(found) - _NAMES_SHOWN} more" if len(found) > _NAMES_SHOWN else ""
    longer = "" if max_token_length >= 225 else " or raise max_token_length (150 or 225)"
    return (
        f"{len(found)} caption(s) are longer than max_token_length {max_token_length}; "
        f"the text after token {max_token_length} is not trained: {shown}{more}. "
        f"Shorten them{longer}."
    )


def check_captions(
    dataset, tokenizer, max_token_length: int, prefix: str = "", suffix: str = "", weighted: bool = False
) -> str | None:
    """The warning for a TrainDataset's captions (with prefix and suffix), or None.
    `weighted`: the (word:1.2) syntax is not counted, as the tokenizer never sees it."""
    from trainer.text.weights import plain_text

    seen: dict[str, Path] = {}
    for item, _ in dataset.images:
        text = " ".join(part for part in (prefix, item.caption, suffix) if part)
        text = plain_text(text) if weighted else text
        seen.setdefault(text, item.path)
    found = long_captions(((path, text) for text, path in seen.items()), tokenizer, max_token_length)
    return long_caption_warning(found, max_token_length)
