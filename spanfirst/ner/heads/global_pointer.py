"""GlobalPointer and Efficient GlobalPointer (Su Jianlin, 2021/2022): every span scored per type.

GlobalPointer: ``s_k(i, j) = (R_i q_{i,k})^T (R_j k_{j,k}) / sqrt(D)`` with per-type query and key
projections and rotary position embeddings ``R``. Efficient GlobalPointer shares one rotary
query/key scorer across types and adds a per-type bias from ``[q_i; k_i]`` and ``[q_j; k_j]``:
``s_k(i, j) = (R_i q_i)^T (R_j k_j) / sqrt(D) + (w_{k,start}^T [q_i; k_i] + w_{k,end}^T [q_j; k_j]) / 2``.

Training uses the multi-label "class imbalance" loss over all spans of a type; a span is an
entity of type k when ``sigmoid(s_k(i, j))`` reaches the threshold (``auto``: chosen on dev like
span-first's, since on small data with sparse types the paper's ``s > 0`` can keep nothing for epochs). Spans longer than ``max_span_width``, spans with i > j
and spans touching padding or special tokens are masked out of both.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from spanfirst.config import GlobalPointerConfig, RunConfig
from spanfirst.ner.heads.base import NerHead, TrainingSpans
from spanfirst.ner.heads.common import (
    CALIBRATION_FLOOR, calibration_cap, DecodedBatch, encode_text, GoldSpans, group_spans, HeadOutput,
    span_grid_mask,
)
from spanfirst.ner.heads.rotary import rotary
from spanfirst.ner.nms import Nesting


def multilabel_crossentropy(logits: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """``log(1 + sum_neg e^{s}) + log(1 + sum_pos e^{-s})`` over the last dim: (...,).

    ``targets`` are 0/1; entries outside ``mask`` take part in neither sum. Computed in float32."""
    s = logits.float()
    pos = targets.bool()
    keep = torch.ones_like(pos) if mask is None else mask.bool()
    neg_inf = torch.full_like(s, float("-inf"))
    zero = s.new_zeros(*s.shape[:-1], 1)  # the "1 +" inside each log
    neg = torch.cat([torch.where(keep & ~pos, s, neg_inf), zero], dim=-1)
    pos_term = torch.cat([torch.where(keep & pos, -s, neg_inf), zero], dim=-1)
    return torch.logsumexp(neg, dim=-1) + torch.logsumexp(pos_term, dim=-1)


class GlobalPointerScorer(nn.Module):
    """Per-type rotary query/key projections: hidden (B, T, H) -> scores (B, K, T, T)."""

    def __init__(self, hidden: int, num_types: int, head_size: int) -> None:
        super().__init__()
        self.num_types, self.head_size = num_types, head_size
        self.proj = nn.Linear(hidden, num_types * 2 * head_size)

    def query_key(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Rotated per-type queries and keys, each (B, T, K, D)."""
        B, T, _ = h.shape
        qk = self.proj(h).view(B, T, self.num_types, 2, self.head_size)
        return rotary(qk[..., 0, :]), rotary(qk[..., 1, :])

    def score_spans(self, h: Tensor, batch: Tensor, start: Tensor, end: Tensor) -> Tensor:
        """(N, K) scores of the listed spans only (no (T, T) grid)."""
        q, k = self.query_key(h)
        return (q[batch, start] * k[batch, end]).sum(-1) / self.head_size**0.5

    def forward(self, h: Tensor) -> Tensor:
        q, k = self.query_key(h)
        return torch.einsum("bikd,bjkd->bkij", q, k) / self.head_size**0.5


class EfficientGlobalPointerScorer(nn.Module):
    """One shared rotary query/key scorer plus a per-type start/end bias: (B, T, H) -> (B, K, T, T)."""

    def __init__(self, hidden: int, num_types: int, head_size: int) -> None:
        super().__init__()
        self.num_types, self.head_size = num_types, head_size
        self.proj = nn.Linear(hidden, 2 * head_size)  # [q; k]
        self.type_bias = nn.Linear(2 * head_size, 2 * num_types)  # w_k^T [q; k] as a start and as an end

    def forward(self, h: Tensor) -> Tensor:
        D, K = self.head_size, self.num_types
        qk = self.proj(h)  # (B, T, 2D)
        q, k = rotary(qk[..., :D]), rotary(qk[..., D:])
        shared = torch.einsum("bid,bjd->bij", q, k) / D**0.5  # (B, T, T)
        bias = (self.type_bias(qk) / 2).transpose(1, 2)  # (B, 2K, T)
        return shared.unsqueeze(1) + bias[:, :K].unsqueeze(-1) + bias[:, K:].unsqueeze(-2)


class GlobalPointerModel(nn.Module):
    def __init__(self, encoder: nn.Module, num_types: int, cfg: GlobalPointerConfig, efficient: bool = False,
                 dropout: float = 0.1) -> None:
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.cfg = cfg
        self.num_types = num_types
        self.dropout = nn.Dropout(dropout)
        scorer = EfficientGlobalPointerScorer if efficient else GlobalPointerScorer
        self.scorer = scorer(hidden, num_types, cfg.head_size)

    def heads(self) -> list[nn.Module]:
        return [self.scorer]

    @property
    def longest_span(self) -> int:
        return self.cfg.max_span_width

    @property
    def merge_policy(self) -> tuple[float, Nesting]:
        """Every span with a positive score is an entity (nested ones too): nothing is suppressed."""
        return 1.0, "allow"

    def forward(self, input_ids: Tensor, attention_mask: Tensor, text_mask: Tensor,
                gold: GoldSpans | None = None) -> HeadOutput:
        hidden = self.dropout(encode_text(self.encoder, input_ids, attention_mask))
        logits = self.scorer(hidden)  # (B, K, T, T)
        if gold is None:
            return HeadOutput(None, logits)
        B, K, T, _ = logits.shape
        mask = span_grid_mask(text_mask, self.cfg.max_span_width)  # (B, T, T)
        targets = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
        fits = mask[gold.batch, gold.start, gold.end]  # gold longer than the width cannot be scored
        targets[gold.batch[fits], gold.type[fits] - 1, gold.start[fits], gold.end[fits]] = True
        loss = multilabel_crossentropy(logits.reshape(B, K, T * T), targets.reshape(B, K, T * T),
                                       mask.unsqueeze(1).expand(B, K, T, T).reshape(B, K, T * T))  # (B, K)
        return HeadOutput(loss.mean(), logits)

    @torch.no_grad()
    def decode(self, input_ids: Tensor, attention_mask: Tensor, text_mask: Tensor) -> DecodedBatch:
        """Every (type, start, end) whose score sigmoid(s) reaches ``threshold`` (0.5: a positive
        logit, the paper's rule); ``auto``: every one a dev calibration could keep (see
        :func:`~spanfirst.ner.heads.common.calibration_cap`)."""
        logits = self.forward(input_ids, attention_mask, text_mask).logits
        mask = span_grid_mask(text_mask, self.cfg.max_span_width)  # (B, T, T)
        auto = self.cfg.threshold == "auto"
        scores = torch.sigmoid(logits.float())
        b, k, i, j = ((scores >= (CALIBRATION_FLOOR if auto else self.cfg.threshold)) & mask.unsqueeze(1)
                      ).nonzero(as_tuple=True)
        score = scores[b, k, i, j]
        exact_from = None
        if auto:
            keep, exact_from = calibration_cap(b, score, text_mask)
            b, k, i, j, score = b[keep], k[keep], i[keep], j[keep], score[keep]
        spans = group_spans(b, i, j, k + 1, score, logits.shape[0])
        return DecodedBatch(spans, candidates_per_sentence=mask.sum(dim=(1, 2)).tolist(),
                            max_width=self.cfg.max_span_width, exact_from=exact_from)


class GlobalPointerHead(NerHead):
    """Every span up to ``ner.global_pointer.max_span_width`` tokens scored per type (rotary q·k)."""

    name = "global_pointer"
    efficient: ClassVar[bool] = False

    @classmethod
    def build(cls, encoder: nn.Module, cfg: RunConfig, labels: dict[str, Any],
              training: TrainingSpans | None = None) -> nn.Module:
        return GlobalPointerModel(encoder, len(labels["types"]), cfg.ner.global_pointer, cls.efficient,
                                  cfg.model.dropout)

    @classmethod
    def span_lengths(cls, cfg: RunConfig) -> list[int]:
        return list(range(1, cfg.ner.global_pointer.max_span_width + 1))

    @classmethod
    def threshold_to_calibrate(cls, cfg: RunConfig) -> tuple[str, float] | None:
        return ("ner.global_pointer.threshold", 0.5) if cfg.ner.global_pointer.threshold == "auto" else None


class EfficientGlobalPointerHead(GlobalPointerHead):
    """GlobalPointer with one shared q·k and per-type start/end biases."""

    name = "efficient_global_pointer"
    efficient = True
