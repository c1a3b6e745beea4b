"""Captions -> text-encoder conditioning, as Kohya does it.

Long captions (max_token_length 150/225) are cut into 75-token chunks, each wrapped in
BOS/EOS and encoded separately, then joined back (first BOS, every chunk's 75, last EOS).
SD1/SD2 take the hidden state `clip_skip` from the end (then the final layer norm); SDXL
takes TE1's and TE2's penultimate hidden states side by side plus TE2's pooled output.
"""

from __future__ import annotations

import torch

from trainer.text.weights import apply_weights, weighted_ids
from trainer.transfer import to_device  # token ids reach the GPU without a host wait


def tokenize(tokenizer, captions: list[str], max_token_length: int = 75) -> torch.Tensor:
    """Token ids shaped [batch, chunks, 77]."""
    max_len = max_token_length + 2
    ids = tokenizer(
        captions, padding="max_length", truncation=True, max_length=max_len, return_tensors="pt"
    ).input_ids
    return chunk_ids(tokenizer, ids, max_token_length)


def chunk_ids(tokenizer, ids: torch.Tensor, max_token_length: int = 75) -> torch.Tensor:
    """[batch, max_token_length + 2] -> [batch, chunks, 77], each chunk in BOS ... EOS."""
    max_len = max_token_length + 2
    if max_token_length == 75:
        return ids[:, None, :]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    chunks = []
    for start in range(1, max_len - 1, 75):
        chunk = torch.cat([ids[:, :1], ids[:, start : start + 75], ids[:, -1:]], dim=1).clone()
        if pad != eos:
            # Tokenizers that pad with another token: every chunk must still end with EOS.
            for row in chunk:
                if row[-2] != eos and row[-2] != pad:
                    row[-1] = eos
                if row[1] == pad:
                    row[1] = eos
        chunks.append(chunk)
    return torch.stack(chunks, dim=1)


def _join_chunks(hidden: torch.Tensor, batch: int, n: int) -> torch.Tensor:
    """[B*n, 77, D] -> [B, 75*n + 2, D] (one BOS, each chunk's body, one EOS)."""
    hidden = hidden.reshape(batch, n, hidden.shape[-2], hidden.shape[-1])
    if n == 1:
        return hidden[:, 0]
    parts = [hidden[:, 0, :1]] + [hidden[:, i, 1:-1] for i in range(n)] + [hidden[:, -1, -1:]]
    return torch.cat(parts, dim=1)


def encode_sd(
    text_encoder, ids: torch.Tensor, clip_skip: int = 1, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """SD1/SD2 conditioning [B, 77*, D] from ids [B, n, 77] (and per-token weights [B, 77*])."""
    b, n, length = ids.shape
    flat = to_device(ids.reshape(b * n, length), text_encoder.device)
    if clip_skip <= 1:
        hidden = text_encoder(flat, return_dict=True).last_hidden_state
    else:
        out = text_encoder(flat, output_hidden_states=True, return_dict=True)
        # transformers 5 puts final_layer_norm on the model itself; 4.x under .text_model
        model = getattr(text_encoder, "text_model", text_encoder)
        hidden = model.final_layer_norm(out.hidden_states[-clip_skip])
    joined = _join_chunks(hidden, b, n)
    return joined if weights is None else apply_weights(joined, weights)


def encode_sdxl(
    text_encoders, ids_pair: list[torch.Tensor], weights_pair: list[torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL conditioning: ([B, 77*, D1+D2], pooled [B, P]) from the two tokenizers' ids
    (and their per-token weights; the pooled output is not weighted)."""
    te1, te2 = text_encoders
    ids1, ids2 = ids_pair
    b, n, length = ids1.shape
    ids1 = to_device(ids1.reshape(b * n, length), te1.device)
    ids2 = to_device(ids2.reshape(b * n, length), te2.device)
    out1 = te1(ids1, output_hidden_states=True, return_dict=True)
    out2 = te2(ids2, output_hidden_states=True, return_dict=True)
    h1 = _join_chunks(out1.hidden_states[-2], b, n)
    h2 = _join_chunks(out2.hidden_states[-2], b, n)
    pooled = out2.text_embeds.reshape(b, n, -1)[:, 0]
    if weights_pair is not None:
        h1, h2 = apply_weights(h1, weights_pair[0]), apply_weights(h2, weights_pair[1])
    return torch.cat([h1, h2.to(h1.dtype)], dim=-1), pooled


class TextConditioner:
    """Turns a batch of captions into the U-Net's conditioning for one architecture."""

    def __init__(
        self,
        tokenizers: list,
        text_encoders: list,
        *,
        arch: str,
        clip_skip: int = 1,
        max_token_length: int = 75,
        weighted: bool = False,
    ):
        self.tokenizers = tokenizers
        self.text_encoders = text_encoders
        self.arch = arch
        self.clip_skip = clip_skip
        self.max_token_length = max_token_length
        self.weighted = weighted  # read (word:1.2) weights in the text (trainer.text.weights)

    def tokenize(self, captions: list[str]) -> list[torch.Tensor]:
        return [tokenize(t, captions, self.max_token_length) for t in self.tokenizers]

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(hidden states, pooled or None). Gradients flow when the encoders are trained."""
        weights = None
        if self.weighted:
            pairs = [weighted_ids(t, captions, self.max_token_length) for t in self.tokenizers]
            ids = [
                chunk_ids(t, i, self.max_token_length)
                for t, (i, _) in zip(self.tokenizers, pairs, strict=True)
            ]
            weights = [w for _, w in pairs]
        else:
            ids = self.tokenize(captions)
        if self.arch == "sdxl":
            return encode_sdxl(self.text_encoders, ids, weights)
        return encode_sd(
            self.text_encoders[0], ids[0], self.clip_skip, None if weights is None else weights[0]
        ), None
