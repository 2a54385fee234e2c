"""BIO token classification: linear + softmax over ``O, B-t, I-t`` for each type, decoded to spans.

Tag ids: 0 is ``O``; type ``t`` (from 1) has ``B-t = 2t - 1`` and ``I-t = 2t``. Only text tokens
carry a tag (the loss ignores special tokens and padding). BIO cannot nest, so a gold span that
overlaps an earlier one (by start, longer first) stays untagged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spanfirst.config import RunConfig
from spanfirst.ner.heads.base import NerHead, TrainingSpans
from spanfirst.ner.heads.common import DecodedBatch, encode_text, GoldSpans, HeadOutput, Span
from spanfirst.ner.nms import Nesting

IGNORE = -100


def flat_gold(gold: GoldSpans) -> Tensor:
    """Mask of the gold spans BIO can tag: those overlapping no earlier span of their sentence."""
    b, s, e = gold.batch, gold.start, gold.end
    if b.numel() == 0:
        return torch.zeros_like(b, dtype=torch.bool)
    T = int(e.max()) + 1
    key = (b * T + s) * T + (T - 1 - (e - s))  # sentence, then start, then longer first
    rank = torch.empty_like(key)
    rank[torch.argsort(key, stable=True)] = torch.arange(key.numel(), device=key.device)
    overlap = (b[:, None] == b[None]) & (s[:, None] <= e[None]) & (s[None] <= e[:, None])  # (G, G)
    earlier = rank[None, :] < rank[:, None]  # [g, h]: h comes before g
    return ~(overlap & earlier).any(dim=1)


def bio_targets(gold: GoldSpans, text_mask: Tensor) -> Tensor:
    """(B, T) tag ids: ``B-t`` at each gold start, ``I-t`` after it up to its end, IGNORE off text."""
    mask = text_mask.bool()
    tags = torch.zeros(mask.shape, dtype=torch.long, device=mask.device)
    keep = flat_gold(gold)
    b, s, e, t = gold.batch[keep], gold.start[keep], gold.end[keep], gold.type[keep]
    pos = torch.arange(mask.shape[1], device=mask.device)
    g, inside = ((pos > s[:, None]) & (pos <= e[:, None])).nonzero(as_tuple=True)  # (span, token) pairs
    tags[b[g], inside] = 2 * t[g]
    tags[b, s] = 2 * t - 1
    return tags.masked_fill(~mask, IGNORE)


def bio_to_spans(tags: list[int], probs: list[float], text: list[bool]) -> list[Span]:
    """Spans from one sentence's tags (text tokens only; others neither start nor break a span).

    ``B-t`` opens a span; ``I-t`` extends an open span of type ``t`` and otherwise opens one (an
    ``I-`` without its ``B-``, as conlleval reads it); ``O`` and a different type close it. The
    score is the mean probability of the span's tags."""
    spans: list[Span] = []
    open_span: tuple[int, int, int] | None = None  # (start, end, type)
    span_probs: list[float] = []
    for i, (tag, p, is_text) in enumerate(zip(tags, probs, text)):
        if not is_text:
            continue
        t, begin = (tag + 1) // 2, tag % 2 == 1
        if tag and not begin and open_span is not None and open_span[2] == t:
            open_span = (open_span[0], i, t)
            span_probs.append(p)
            continue
        if open_span is not None:
            spans.append((*open_span, sum(span_probs) / len(span_probs)))
        open_span, span_probs = ((i, i, t), [p]) if tag else (None, [])
    if open_span is not None:
        spans.append((*open_span, sum(span_probs) / len(span_probs)))
    return spans


class BioTaggerModel(nn.Module):
    def __init__(self, encoder: nn.Module, num_types: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.num_types = num_types
        self.dropout = nn.Dropout(dropout)
        self.tagger = nn.Linear(encoder.config.hidden_size, 2 * num_types + 1)

    def heads(self) -> list[nn.Module]:
        return [self.tagger]

    @property
    def longest_span(self) -> None:
        """BIO spans have no length limit."""
        return None

    @property
    def merge_policy(self) -> tuple[float, Nesting]:
        return 1.0, "forbid"  # BIO output is flat

    def forward(self, input_ids: Tensor, attention_mask: Tensor, text_mask: Tensor,
                gold: GoldSpans | None = None) -> HeadOutput:
        logits = self.tagger(self.dropout(encode_text(self.encoder, input_ids, attention_mask)))  # (B, T, 2K+1)
        if gold is None:
            return HeadOutput(None, logits)
        targets = bio_targets(gold, text_mask)
        if not (targets != IGNORE).any():
            return HeadOutput(logits.sum() * 0.0, logits)
        return HeadOutput(F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE),
                          logits)

    @torch.no_grad()
    def decode(self, input_ids: Tensor, attention_mask: Tensor, text_mask: Tensor) -> DecodedBatch:
        logits = self.forward(input_ids, attention_mask, text_mask).logits
        probs, tags = torch.softmax(logits.float(), dim=-1).max(dim=-1)  # (B, T)
        text = text_mask.bool().cpu().tolist()
        spans = [bio_to_spans(t, p, m) for t, p, m in zip(tags.cpu().tolist(), probs.cpu().tolist(), text)]
        return DecodedBatch([sorted(s, key=lambda sp: -sp[3]) for s in spans])


class BioHead(NerHead):
    """Token tagging (``O``, ``B-t``, ``I-t``): flat output, spans of any length."""

    name = "bio"
    overlapping = False

    @classmethod
    def build(cls, encoder: nn.Module, cfg: RunConfig, labels: dict[str, Any],
              training: TrainingSpans | None = None) -> nn.Module:
        return BioTaggerModel(encoder, len(labels["types"]), cfg.model.dropout)
