"""Build the real CLIP BPE tokenizer offline.

The tiny test models need a tokenizer that gives the same ids as the one shipped with
every Stable Diffusion checkpoint (openai/clip-vit-large-patch14), otherwise captions,
keep-tokens and max-token-length behave differently from real training. No download is
possible here, but the BPE merges OpenAI published ship inside the open-clip-torch wheel;
from them we rebuild `vocab.json` and `merges.txt` the way OpenAI's CLIP does.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

BPE_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
# OpenAI CLIP keeps the first 49152 - 256 - 2 merges (after the header line).
NUM_MERGES = 49152 - 256 - 2
START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
MODEL_MAX_LENGTH = 77
VOCAB_SIZE = 49408


def find_bpe_file() -> Path:
    """Locate open_clip's gzipped BPE merges without importing open_clip (it needs torchvision)."""
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        candidate = Path(folder) / BPE_FILE_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{BPE_FILE_NAME} not found: install the open-clip-torch wheel "
        "(pip install --no-deps open-clip-torch); it ships the CLIP BPE vocabulary."
    )


def _byte_to_unicode() -> dict[int, str]:
    """Map every byte to a printable unicode character, as GPT-2 / CLIP byte-level BPE does.

    Printable Latin-1 bytes map to themselves; the rest get code points from 256 upward,
    in byte order. The insertion order is the order of the first 256 vocabulary entries.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in mapping:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return mapping


@functools.lru_cache(maxsize=1)
def clip_merges_and_vocab(bpe_file: Path | None = None) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Return CLIP's BPE merges and its 49408-token vocabulary, in OpenAI's order.

    Cached: callers must not modify the returned list and dict.
    """
    path = bpe_file or find_bpe_file()
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1]]
    byte_chars = list(_byte_to_unicode().values())
    tokens = byte_chars + [char + "</w>" for char in byte_chars]
    tokens += ["".join(merge) for merge in merges]
    tokens += [START_TOKEN, END_TOKEN]
    if len(tokens) != VOCAB_SIZE:
        raise ValueError(f"{path} gave {len(tokens)} tokens, expected {VOCAB_SIZE}")
    return merges, {token: index for index, token in enumerate(tokens)}


def build_clip_tokenizer(pad_token: str = END_TOKEN) -> CLIPTokenizer:
    """Return an in-memory CLIPTokenizer equal to openai/clip-vit-large-patch14's (77 tokens)."""
    from transformers import CLIPTokenizer

    merges, vocab = clip_merges_and_vocab()
    return CLIPTokenizer(
        vocab=dict(vocab), merges=list(merges), pad_token=pad_token, model_max_length=MODEL_MAX_LENGTH
    )


def write_bpe_files(out_dir: Path) -> None:
    """Write vocab.json and merges.txt, the two files OpenAI's CLIP tokenizer is made of."""
    merges, vocab = clip_merges_and_vocab()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merge_lines = ["#version: 0.2"] + [f"{first} {second}" for first, second in merges]
    (out_dir / "merges.txt").write_text("\n".join(merge_lines) + "\n", encoding="utf-8")


def write_clip_tokenizer(out_dir: Path, pad_token: str = END_TOKEN) -> None:
    """Write a CLIPTokenizer folder equal to openai/clip-vit-large-patch14's tokenizer.

    pad_token: SD1 pads with "<|endoftext|>"; SD2 and SDXL's second tokenizer pad with "!".
    The folder holds vocab.json and merges.txt plus whatever the installed transformers
    writes with save_pretrained (tokenizer.json, tokenizer_config.json with
    model_max_length 77), so `CLIPTokenizer.from_pretrained(out_dir)` and the diffusers
    pipelines load it.
    """
    write_bpe_files(out_dir)
    build_clip_tokenizer(pad_token).save_pretrained(Path(out_dir))
