"""Caption processing per training step (pure; the order follows Kohya, ANCHORS.md §2).

1. prefix / suffix, joined with a space (write "mychar," to make the prefix a tag).
2. whole-caption dropout -> "" (random rate, or every N-th epoch), so the LoRA also
   learns the unconditional case.
3. shuffle and/or tag dropout: split on ",", the first keep_tokens tags stay in place
   (typically the trigger word), the rest are shuffled and each dropped with
   tag_dropout_rate; re-joined with ", ". Empty tags ("a,,b") are left out.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


def split_tags(caption: str) -> list[str]:
    """The comma-separated tags of a caption, stripped, empty ones left out."""
    return [tag.strip() for tag in caption.split(",") if tag.strip()]


def process_caption(
    caption: str,
    *,
    prefix: str = "",
    suffix: str = "",
    shuffle: bool = False,
    keep_tokens: int = 0,
    tag_dropout_rate: float = 0.0,
    dropout_rate: float = 0.0,
    dropout_every_n_epochs: int = 0,
    epoch: int = 1,
    rng: random.Random,
) -> str:
    """The caption the text encoder sees this step. `epoch` counts from 1, so with
    dropout_every_n_epochs=3 epochs 3, 6, 9... train with empty captions."""
    caption = " ".join(part for part in (prefix, caption, suffix) if part)

    dropped = dropout_rate > 0 and rng.random() < dropout_rate
    dropped = dropped or (dropout_every_n_epochs > 0 and epoch % dropout_every_n_epochs == 0)
    if dropped:
        return ""

    if not (shuffle or tag_dropout_rate > 0):
        return caption
    tags = split_tags(caption)
    keep = max(0, keep_tokens)
    fixed, flexible = tags[:keep], tags[keep:]
    if shuffle:
        rng.shuffle(flexible)
    if tag_dropout_rate > 0:
        flexible = [tag for tag in flexible if rng.random() >= tag_dropout_rate]
    return ", ".join(fixed + flexible)


@dataclass(frozen=True)
class CaptionOptions:
    """The caption settings of a run, bundled so the dataset can carry them."""

    prefix: str = ""
    suffix: str = ""
    shuffle: bool = False
    keep_tokens: int = 0
    tag_dropout_rate: float = 0.0
    dropout_rate: float = 0.0
    dropout_every_n_epochs: int = 0

    @classmethod
    def from_config(cls, cfg: object) -> CaptionOptions:
        """Read the Kohya-named settings from a config object; missing ones keep defaults."""
        def get(name: str, default):
            value = getattr(cfg, name, default)
            return default if value is None else value
        return cls(
            prefix=str(get("caption_prefix", "")),
            suffix=str(get("caption_suffix", "")),
            shuffle=bool(get("shuffle_caption", False)),
            keep_tokens=int(get("keep_tokens", 0)),
            tag_dropout_rate=float(get("caption_tag_dropout_rate", 0.0)),
            dropout_rate=float(get("caption_dropout_rate", 0.0)),
            dropout_every_n_epochs=int(get("caption_dropout_every_n_epochs", 0)),
        )

    def apply(self, caption: str, *, epoch: int, rng: random.Random) -> str:
        """process_caption with these settings."""
        return process_caption(
            caption, prefix=self.prefix, suffix=self.suffix, shuffle=self.shuffle,
            keep_tokens=self.keep_tokens, tag_dropout_rate=self.tag_dropout_rate,
            dropout_rate=self.dropout_rate, dropout_every_n_epochs=self.dropout_every_n_epochs,
            epoch=epoch, rng=rng)


class _Captioned(Protocol):
    caption: str
    subset: str


def tag_frequency(items: Iterable[_Captioned]) -> dict[str, dict[str, int]]:
    """Per sub-folder, how many images carry each tag (once per image, not per repeat).

    This is the ss_tag_frequency metadata that A1111/CivitAI show for a LoRA.
    """
    frequency: dict[str, dict[str, int]] = {}
    for item in items:
        counts = frequency.setdefault(item.subset, {})
        for tag in split_tags(item.caption):
            counts[tag] = counts.get(tag, 0) + 1
    return frequency
