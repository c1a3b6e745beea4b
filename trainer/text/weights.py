"""Attention weights in captions and prompts: `(red hair:1.3)`, `(hat)`, `[background]`.

The syntax A1111, Forge and Kohya's sample prompts read: `(text)` is x1.1, `[text]` is
/1.1, `(text:w)` is x w, brackets nest and multiply, `\\(` is a literal bracket, an
unclosed bracket runs to the end. Each token of a text gets the weight of its part; the
text encoder's output is multiplied token by token by these weights and then rescaled
so its overall size is unchanged (as sd-scripts' weighted captions do), so only the
balance between the parts changes. Used for captions when `weighted_captions` is on, and always for
sample prompts (as Kohya's sampler does).
"""

from __future__ import annotations

import re

import torch

UP, DOWN = 1.1, 1 / 1.1
_TOKEN = re.compile(
    r"""
    \\[()\[\]\\]              # an escaped bracket or backslash
  | :\s*([+-]?\d*\.?\d+)\s*\) # ':1.3)' closes a round bracket with an explicit weight
  | [()\[\]]                  # a bracket
  | [^\\()\[\]:]+             # plain text
  | [\\:]                     # a lone backslash or colon is text
""",
    re.VERBOSE,
)


def parse_weighted(text: str) -> list[tuple[str, float]]:
    """'a (b:1.5) [c]' -> [('a ', 1.0), ('b', 1.5), (' ', 1.0), ('c', 1/1.1)]."""
    parts: list[list] = []
    rounds: list[int] = []
    squares: list[int] = []

    def scale(start: int, factor: float) -> None:
        for part in parts[start:]:
            part[1] *= factor

    for match in _TOKEN.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\") and len(token) == 2:
            parts.append([token[1], 1.0])
        elif token == "(":
            rounds.append(len(parts))
        elif token == "[":
            squares.append(len(parts))
        elif weight is not None and rounds:
            scale(rounds.pop(), float(weight))
        elif token == ")" and rounds:
            scale(rounds.pop(), UP)
        elif token == "]" and squares:
            scale(squares.pop(), DOWN)
        else:
            parts.append([token, 1.0])
    for start in rounds:
        scale(start, UP)
    for start in squares:
        scale(start, DOWN)
    merged: list[list] = []
    for text_part, w in parts:
        if merged and merged[-1][1] == w:
            merged[-1][0] += text_part
        else:
            merged.append([text_part, w])
    return [(t, w) for t, w in merged] or [("", 1.0)]


def plain_text(text: str) -> str:
    """The words the tokenizer reads, without the weight syntax."""
    return "".join(part for part, _ in parse_weighted(text))


def weighted_ids(tokenizer, captions: list[str], max_token_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, weights), each [batch, max_token_length + 2]: BOS, the tokens, EOS, padding,
    as the tokenizer lays them out; BOS, EOS and padding have weight 1."""
    length = max_token_length + 2
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    all_ids, all_weights = [], []
    for caption in captions:
        tokens: list[int] = []
        weights: list[float] = []
        for part, w in parse_weighted(caption):
            if not part:
                continue
            ids = tokenizer(part, add_special_tokens=False, truncation=False, verbose=False).input_ids
            tokens += ids
            weights += [w] * len(ids)
        tokens, weights = tokens[:max_token_length], weights[:max_token_length]
        fill = length - 2 - len(tokens)
        all_ids.append([bos, *tokens, eos] + [pad] * fill)
        all_weights.append([1.0, *weights, 1.0] + [1.0] * fill)
    return torch.tensor(all_ids, dtype=torch.long), torch.tensor(all_weights, dtype=torch.float32)


def apply_weights(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """hidden [B, L, D] x weights [B, L], rescaled so each sample's overall size stays the same.

    The rescale keeps the root mean square (sd-scripts keeps the plain mean, which is near
    zero for some text encoders and then blows up); it is a constant for the gradient."""
    if bool((weights == 1).all()):
        return hidden
    w = weights.to(hidden.device, torch.float32)
    scaled = hidden.float() * w[..., None]
    with torch.no_grad():
        before = hidden.float().pow(2).mean(dim=(-2, -1)).sqrt()
        after = scaled.pow(2).mean(dim=(-2, -1)).sqrt().clamp_min(1e-12)
        ratio = before / after
    return (scaled * ratio[:, None, None]).to(hidden.dtype)
