"""What the peer heads share: their output, span masks over the text, per-sentence span lists.

Token spans are ``(start, end)`` with ``end`` inclusive, indices into the encoded sequence,
as everywhere in :mod:`spanfirst.ner`. Only text tokens (``text_mask``) may start or end a span.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from spanfirst.ner.candidates import Candidates

Span = tuple[int, int, int, float]  # (tok_start, tok_end, type_id from 1, score)


@dataclass
class GoldSpans:
    """Flat gold token spans of a batch (end inclusive; type ids start at 1)."""

    batch: Tensor  # (G,)
    start: Tensor  # (G,)
    end: Tensor  # (G,)
    type: Tensor  # (G,)


@dataclass
class DecodedBatch:
    """What every NER head's ``decode`` returns; the diagnostics a head has no notion of stay None."""

    spans: list[list[tuple[int, int, int, float]]]  # per sentence: (tok_start, tok_end, type_id, score)
    candidates: Candidates | None = None  # span-first: the spans its type head scored
    candidates_per_sentence: list[int] | None = None  # spans scored per sentence (None: no span stage, BIO)
    length_pred: Tensor | None = None  # span-first: (B, T) argmax length bin at every token
    max_width: int | None = None  # exhaustive heads: every text span up to this many tokens was scored


@dataclass
class HeadOutput:
    loss: Tensor | None
    logits: Tensor  # head-specific: (B, T, tags) BIO, (B, K, T, T) GlobalPointer, (B, T, W, K) GLiNER


def span_mask(text_mask: Tensor, max_width: int) -> Tensor:
    """(B, T, W): the span starting at token ``i`` with ``w + 1`` tokens starts and ends on text."""
    mask = text_mask.bool()
    B, T = mask.shape
    end = torch.arange(T, device=mask.device).unsqueeze(1) + torch.arange(max_width, device=mask.device)  # (T, W)
    padded = torch.cat([mask, mask.new_zeros(B, max_width)], dim=1)  # (B, T + W): no text past the end
    return mask.unsqueeze(-1) & padded[:, end]


def span_grid_mask(text_mask: Tensor, max_width: int) -> Tensor:
    """(B, T, T): ``[b, i, j]`` is a span start i <= end j, both on text, at most ``max_width`` tokens."""
    mask = text_mask.bool()
    T = mask.shape[1]
    pos = torch.arange(T, device=mask.device)
    width = pos.unsqueeze(0) - pos.unsqueeze(1)  # (T, T): j - i
    band = (width >= 0) & (width < max_width)
    return mask.unsqueeze(2) & mask.unsqueeze(1) & band


def group_spans(batch: Tensor, start: Tensor, end: Tensor, type_id: Tensor, score: Tensor, B: int) -> list[list[Span]]:
    """Flat spans -> one list per sentence, best score first."""
    out: list[list[Span]] = [[] for _ in range(B)]
    order = torch.argsort(score.float().cpu(), descending=True, stable=True).tolist()
    rows = list(zip(batch.cpu().tolist(), start.cpu().tolist(), end.cpu().tolist(), type_id.cpu().tolist(),
                    score.float().cpu().tolist()))
    for k in order:
        b, s, e, t, sc = rows[k]
        out[b].append((s, e, t, sc))
    return out


def encode_text(encoder: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    return encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
