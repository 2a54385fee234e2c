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
    # characters of the first / last token outside the entity (an edge inside a token); None: 0
    trim_start: Tensor | None = None  # (G,)
    trim_end: Tensor | None = None  # (G,)


@dataclass
class DecodedBatch:
    """What every NER head's ``decode`` returns; the diagnostics a head has no notion of stay None."""

    spans: list[list[tuple[int, int, int, float]]]  # per sentence: (tok_start, tok_end, type_id, score)
    candidates: Candidates | None = None  # span-first: the spans its type head scored
    candidates_per_sentence: list[int] | None = None  # spans scored per sentence (None: no span stage, BIO)
    length_pred: Tensor | None = None  # span-first: (B, T) argmax length bin at every token
    max_width: int | None = None  # exhaustive heads: every text span up to this many tokens was scored
    # per sentence, the lowest threshold at which ``spans`` are exactly what decoding at that
    # threshold keeps (a calibration decode that capped its spans); None: any threshold
    exact_from: list[float] | None = None
    # per sentence and span: characters of its first / last token outside the entity; None: none
    trims: list[list[tuple[int, int]]] | None = None
    # span-first: each candidate's score and best type id (what the threshold and NMS decided on)
    candidate_scores: Tensor | None = None  # (N,)
    candidate_types: Tensor | None = None  # (N,)


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


# A head whose threshold is chosen on dev ("auto") decodes for calibration every span scoring at
# least CALIBRATION_FLOOR, at most CALIBRATION_SPANS_PER_TOKEN per text token of a sentence (best
# first): enough for any threshold a dev set would pick, bounded for a model that scores all alike.
CALIBRATION_FLOOR = 0.01
CALIBRATION_SPANS_PER_TOKEN = 2


def top_per_group(group: Tensor, score: Tensor, k: int | Tensor, num_groups: int) -> Tensor:
    """Mask of the ``k`` highest-scoring items within each group (vectorised); ``k`` may be a
    (num_groups,) tensor of per-group counts."""
    if group.numel() == 0 or (isinstance(k, int) and k <= 0):
        return torch.zeros_like(group, dtype=torch.bool)
    order = torch.argsort(score, descending=True, stable=True)
    order = order[torch.argsort(group[order], stable=True)]  # grouped, best first within group
    sorted_group = group[order]
    first = torch.searchsorted(sorted_group, torch.arange(num_groups, device=group.device))
    rank = torch.arange(group.numel(), device=group.device) - first[sorted_group]
    limit = k[sorted_group] if isinstance(k, Tensor) else k
    mask = torch.zeros_like(group, dtype=torch.bool)
    mask[order] = rank < limit
    return mask


def calibration_cap(batch: Tensor, score: Tensor, text_mask: Tensor) -> tuple[Tensor, list[float]]:
    """(mask of the spans a calibration decode keeps, per sentence the lowest exact threshold):
    the best ``CALIBRATION_SPANS_PER_TOKEN`` per text token of each sentence among ``batch``/``score``
    (spans already at or above the floor); a sentence that lost spans to the cap is exact only
    above the best score it lost."""
    B = text_mask.shape[0]
    cap = text_mask.sum(dim=1).to(batch.device) * CALIBRATION_SPANS_PER_TOKEN
    keep = top_per_group(batch, score, cap, B)
    lost = torch.full((B,), CALIBRATION_FLOOR, dtype=torch.float, device=score.device)
    dropped = ~keep
    if bool(dropped.any()):
        lost = lost.scatter_reduce(0, batch[dropped], score[dropped].float(), reduce="amax")
        lost = torch.where(lost > CALIBRATION_FLOOR, torch.nextafter(lost, torch.ones_like(lost)), lost)
    return keep, lost.tolist()


def encode_text(encoder: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    return encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
