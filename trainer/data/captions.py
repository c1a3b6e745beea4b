"""Caption processing per training step (pure; the order follows Kohya, docs/ANCHORS.md §2).

0. `enable_wildcard`: one line of a multi-line caption file, picked at random, and each
   `{a|b|c}` in it replaced by one of its choices (`{{` and `}}` are literal braces).
1. prefix / suffix, joined with a space (write "mychar," to make the prefix a tag).
2. whole-caption dropout -> "" (random rate, or every N-th epoch), so the LoRA also
   learns the unconditional case.
3. shuffle and/or tag dropout: split on ",", the first keep_tokens tags stay in place
   (typically the trigger word), the rest are shuffled and each dropped with
   tag_dropout_rate; re-joined with ", ". Empty tags ("a,,b") are left out.
   With `keep_tokens_separator` (e.g. "|||") in a caption, the tags before it stay in
   place instead (and, after a second separator, the tags at the end too); the separator
   never reaches the text encoder. `secondary_separator` (e.g. "::") joins words that
   move as one tag and becomes ", " afterwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainer.config import TrainingConfig

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


def split_tags(caption: str) -> list[str]:
    """The comma-separated tags of a caption, stripped, empty ones left out."""
    return [tag.strip() for tag in caption.split(",") if tag.strip()]


_CHOICE = re.compile(r"\{([^{}]*)\}")


def pick_wildcards(caption: str, lines: Sequence[str], rng: random.Random) -> str:
    """enable_wildcard: a random line (of several), then a random choice for each {a|b}."""
    if len(lines) > 1:
        caption = rng.choice(list(lines))
    caption = caption.replace("{{", "\x00").replace("}}", "\x01")  # escaped braces stay
    caption = _CHOICE.sub(lambda m: rng.choice(m.group(1).split("|")), caption)
    return caption.replace("\x00", "{").replace("\x01", "}")


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
    keep_tokens_separator: str = "",
    secondary_separator: str = "",
) -> str:
    """The caption the text encoder sees this step. `epoch` counts from 1, so with
    dropout_every_n_epochs=3 epochs 3, 6, 9... train with empty captions."""
    caption = " ".join(part for part in (prefix, caption, suffix) if part)

    dropped = dropout_rate > 0 and rng.random() < dropout_rate
    dropped = dropped or (dropout_every_n_epochs > 0 and epoch % dropout_every_n_epochs == 0)
    if dropped:
        return ""

    separated = bool(keep_tokens_separator) and keep_tokens_separator in caption
    if not (shuffle or tag_dropout_rate > 0 or separated):
        return caption.replace(secondary_separator, ", ") if secondary_separator else caption
    if separated:
        head, _, rest = caption.partition(keep_tokens_separator)
        middle, _, tail = rest.partition(keep_tokens_separator)
        fixed, flexible, last = split_tags(head), split_tags(middle), split_tags(tail)
    else:
        tags = split_tags(caption)
        keep = max(0, keep_tokens)
        fixed, flexible, last = tags[:keep], tags[keep:], []
    if shuffle:
        rng.shuffle(flexible)
    if tag_dropout_rate > 0:
        flexible = [tag for tag in flexible if rng.random() >= tag_dropout_rate]
    text = ", ".join(fixed + flexible + last)
    return text.replace(secondary_separator, ", ") if secondary_separator else text


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
    keep_tokens_separator: str = ""
    secondary_separator: str = ""
    wildcard: bool = False

    @classmethod
    def from_config(cls, cfg: TrainingConfig) -> CaptionOptions:
        """The caption settings of a config (Kohya's names)."""
        return cls(
            prefix=cfg.caption_prefix,
            suffix=cfg.caption_suffix,
            shuffle=cfg.shuffle_caption,
            keep_tokens=cfg.keep_tokens,
            tag_dropout_rate=cfg.caption_tag_dropout_rate,
            dropout_rate=cfg.caption_dropout_rate,
            dropout_every_n_epochs=cfg.caption_dropout_every_n_epochs,
            keep_tokens_separator=cfg.keep_tokens_separator,
            secondary_separator=cfg.secondary_separator,
            wildcard=cfg.enable_wildcard,
        )

    def apply(self, caption: str, *, epoch: int, rng: random.Random, lines: Sequence[str] = ()) -> str:
        """process_caption with these settings; `lines`: all lines of the caption file."""
        if self.wildcard:
            caption = pick_wildcards(caption, lines, rng)
        return process_caption(
            caption,
            prefix=self.prefix,
            suffix=self.suffix,
            shuffle=self.shuffle,
            keep_tokens=self.keep_tokens,
            tag_dropout_rate=self.tag_dropout_rate,
            dropout_rate=self.dropout_rate,
            dropout_every_n_epochs=self.dropout_every_n_epochs,
            epoch=epoch,
            rng=rng,
            keep_tokens_separator=self.keep_tokens_separator,
            secondary_separator=self.secondary_separator,
        )


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
