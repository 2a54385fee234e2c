"""Entity representations from encoder states, vectorised over the batch (no per-sample loops).

Spans are inclusive token spans ``(B, 2)``; markers are token indices ``(B,)``.
"""

from __future__ import annotations

import torch
from torch import nn

POOLING_MODES = ("cls", "marker", "mean", "attention")


def span_mask(spans: torch.Tensor, length: int) -> torch.Tensor:
    """(B, T) bool mask of the tokens inside each inclusive span."""
    positions = torch.arange(length, device=spans.device).unsqueeze(0)  # (1, T)
    return (positions >= spans[:, :1]) & (positions <= spans[:, 1:2])  # (B, T)


def marker_pool(hidden: torch.Tensor, markers: torch.Tensor) -> torch.Tensor:
    """The state at each example's marker token: (B, T, H), (B,) -> (B, H)."""
    return hidden[torch.arange(hidden.size(0), device=hidden.device), markers]


def mean_pool(hidden: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """Mean of the states inside each span: (B, T, H), (B, 2) -> (B, H)."""
    mask = span_mask(spans, hidden.size(1)).unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def attention_pool(hidden: torch.Tensor, spans: torch.Tensor, scorer: nn.Module) -> torch.Tensor:
    """Softmax over the span's tokens of ``scorer(state)``, then the weighted sum: -> (B, H)."""
    scores = scorer(hidden).squeeze(-1)  # (B, T)
    mask = span_mask(spans, hidden.size(1))  # (B, T)
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores.float(), dim=-1).to(hidden.dtype)  # (B, T)
    return torch.einsum("bt,bth->bh", weights, hidden)


class EntityPooler(nn.Module):
    """Subject/object vectors for one pooling mode; ``cls`` returns the [CLS] state only."""

    def __init__(self, mode: str, hidden_size: int, use_cls: bool = False) -> None:
        super().__init__()
        if mode not in POOLING_MODES:
            raise ValueError(f"unknown pooling '{mode}'; known: {POOLING_MODES}")
        self.mode, self.use_cls = mode, use_cls
        # A learned vector scores each token of the span (attention pooling only).
        self.scorer = nn.Linear(hidden_size, 1, bias=False) if mode == "attention" else None
        self.out_size = hidden_size if mode == "cls" else hidden_size * (3 if use_cls else 2)

    def forward(self, hidden: torch.Tensor, subject_span: torch.Tensor, object_span: torch.Tensor,
                subject_marker: torch.Tensor, object_marker: torch.Tensor) -> torch.Tensor:
        cls = hidden[:, 0]  # (B, H)
        if self.mode == "cls":
            return cls
        if self.mode == "marker":
            subj, obj = marker_pool(hidden, subject_marker), marker_pool(hidden, object_marker)
        elif self.mode == "mean":
            subj, obj = mean_pool(hidden, subject_span), mean_pool(hidden, object_span)
        else:
            subj, obj = attention_pool(hidden, subject_span, self.scorer), attention_pool(hidden, object_span, self.scorer)
        parts = [cls, subj, obj] if self.use_cls else [subj, obj]
        return torch.cat(parts, dim=-1)  # (B, 2H or 3H)
