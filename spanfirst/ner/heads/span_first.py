"""The span-first NER model: encoder + start head + length-bin head + type head.

Training and inference share one candidate generator (dynamic top-k starts expanded into every
length of the bins, or one representative length per bin); the type head scores each candidate
from its first, last and mean token states (``ner.span_representation``): one sigmoid per type
(``ner.type_decision: multilabel``) or a softmax whose class 0 means "no entity". Everything in
``forward`` is batched tensor work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spanfirst.config import NerConfig, RunConfig
from spanfirst.losses import (
    binary_focal_loss, focal_cross_entropy, inverse_log_frequency_weights, iou_partial_credit_weights,
    soft_start_targets,
)
from spanfirst.ner.heads.base import NerHead, TrainingSpans
from spanfirst.ner.candidates import bin_modes, fit_length_bins, generate_candidates, length_to_bin
from spanfirst.ner.heads.common import DecodedBatch, GoldSpans, top_per_group
from spanfirst.ner.heads.global_pointer import GlobalPointerScorer, multilabel_crossentropy
from spanfirst.ner.nms import Nesting, nms_1d


@dataclass
class SpanFirstOutput:
    loss: Tensor | None
    start_loss: Tensor | None
    length_loss: Tensor | None
    type_loss: Tensor | None
    start_logits: Tensor  # (B, T)
    length_logits: Tensor  # (B, T, n_bins)
    hidden: Tensor  # (B, T, H)


POINTER_SIZE = 64  # query/key size of span_representation: pointer (GlobalPointer's default)


def span_mean(hidden: Tensor, batch: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Mean of ``hidden[b, s:e+1]`` for every (b, s, e) via a prefix sum: (N, H)."""
    csum = F.pad(hidden.cumsum(dim=1), (0, 0, 1, 0))  # (B, T+1, H); csum[:, i] = sum of the first i
    total = csum[batch, end + 1] - csum[batch, start]  # (N, H)
    return total / (end - start + 1).unsqueeze(-1).to(hidden.dtype)


class SpanFirstModel(nn.Module):
    def __init__(
        self,
        encoder: nn.Module,
        num_types: int,
        cfg: NerConfig,
        dropout: float = 0.1,
        length_weights: Tensor | None = None,
        type_weights: Tensor | None = None,
    ) -> None:
        super().__init__()
        if not cfg.fitted:
            raise ValueError("SpanFirstModel needs concrete ner.length_bins and ner.representative_lengths, "
                             "not 'auto' (NerTask fits them to the training data)")
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.cfg = cfg
        self.num_types = num_types
        self.dropout = nn.Dropout(dropout)
        self.start_head = nn.Linear(hidden, 1)
        self.length_head = nn.Linear(hidden, len(cfg.length_bins))
        # softmax: class 0 is "no entity"; multilabel: one logit per type. "endpoints" reads the
        # first and last token beside the mean
        self.no_entity_class = int(cfg.type_decision == "softmax")
        self.type_head = nn.Linear(hidden * (1 if cfg.span_representation == "mean" else 3),
                                   num_types + self.no_entity_class)
        # "pointer": per type, a rotary query at the first token meets a key at the last (as in
        # GlobalPointer), added to the type logits of the endpoint features
        self.pointer = (GlobalPointerScorer(hidden, num_types, POINTER_SIZE)
                        if cfg.span_representation == "pointer" else None)
        # per token: how many of its characters lie outside an entity starting / ending on it
        # (0..max_edge_trim each), for entity edges inside a subword token
        self.edge_head = nn.Linear(hidden, 2 * (cfg.max_edge_trim + 1)) if cfg.max_edge_trim else None
        self.register_buffer("length_weights", length_weights if length_weights is not None else torch.ones(len(cfg.length_bins)))
        self.register_buffer("type_weights", type_weights if type_weights is not None else torch.ones(num_types + 1))

    def heads(self) -> list[nn.Module]:
        return ([self.start_head, self.length_head, self.type_head]
                + ([self.pointer.proj] if self.pointer is not None else [])
                + ([self.edge_head] if self.edge_head is not None else []))

    def edge_logits(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, M+1) logits of how many characters of each token precede an entity starting on
        it, and (B, T, M+1) of how many follow an entity ending on it."""
        logits = self.edge_head(hidden)
        return logits.chunk(2, dim=-1)

    def _edge_loss(self, hidden: Tensor, gold: GoldSpans) -> Tensor:
        """Cross-entropy of the gold edges' trims (clamped to ``max_edge_trim``) at their tokens."""
        if gold.batch.numel() == 0:
            return hidden.sum() * 0.0
        head, tail = self.edge_logits(hidden)
        zeros = torch.zeros_like(gold.start)
        m = self.cfg.max_edge_trim
        t_start = (gold.trim_start if gold.trim_start is not None else zeros).clamp(0, m)
        t_end = (gold.trim_end if gold.trim_end is not None else zeros).clamp(0, m)
        return (F.cross_entropy(head[gold.batch, gold.start].float(), t_start)
                + F.cross_entropy(tail[gold.batch, gold.end].float(), t_end))

    @property
    def longest_span(self) -> int:
        """The longest span (tokens) a start candidate expands into."""
        return max(self.cfg.candidate_lengths())

    @property
    def merge_policy(self) -> tuple[float, Nesting]:
        """(IoU threshold, nesting) for settling spans of neighbouring windows: the model's own NMS."""
        return self.cfg.nms_iou, self.cfg.nesting

    def span_features(self, hidden: Tensor, batch: Tensor, start: Tensor, end: Tensor) -> Tensor:
        """What the type head reads of each span: its mean, or [first; last; mean]."""
        mean = span_mean(hidden, batch, start, end)
        if self.cfg.span_representation == "mean":
            return mean
        return torch.cat([hidden[batch, start], hidden[batch, end], mean], dim=-1)

    def type_logits(self, hidden: Tensor, batch: Tensor, start: Tensor, end: Tensor) -> Tensor:
        """Type logits of the spans: (N, K+1) with class 0 "no entity" (softmax), else (N, K)."""
        logits = self.type_head(self.span_features(hidden, batch, start, end))
        if self.pointer is None:
            return logits
        pointer = self.pointer.score_spans(hidden, batch, start, end).to(logits.dtype)  # (N, K)
        n0 = self.no_entity_class
        return torch.cat([logits[:, :n0], logits[:, n0:] + pointer], dim=-1)

    def encode(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, text_mask: Tensor, gold: GoldSpans | None = None
    ) -> SpanFirstOutput:
        hidden = self.dropout(self.encode(input_ids, attention_mask))  # (B, T, H)
        start_logits = self.start_head(hidden).squeeze(-1)  # (B, T)
        length_logits = self.length_head(hidden)  # (B, T, n_bins)
        out = SpanFirstOutput(None, None, None, None, start_logits, length_logits, hidden)
        if gold is None:
            return out
        cfg = self.cfg
        text_mask = text_mask.bool()

        # Start: focal loss over text tokens, optionally with soft neighbour labels.
        target = torch.zeros_like(start_logits)
        target[gold.batch, gold.start] = 1.0
        if cfg.soft_start_labels:
            target = soft_start_targets(target, cfg.soft_start_neighbour, text_mask)
        start_loss = binary_focal_loss(
            start_logits, target, alpha=cfg.start_focal_alpha, gamma=cfg.start_focal_gamma, mask=text_mask
        )

        # Length: class-weighted CE at gold start tokens only.
        gold_bins = length_to_bin(gold.end - gold.start + 1, cfg.length_bins)
        if gold.batch.numel():
            length_loss = F.cross_entropy(
                length_logits[gold.batch, gold.start], gold_bins, weight=self.length_weights
            )
        else:
            length_loss = length_logits.sum() * 0.0

        type_loss = (self._type_loss if self.no_entity_class else self._multilabel_type_loss)(
            hidden, start_logits.detach(), text_mask, gold)
        w_start, w_len, w_type = cfg.loss_weights
        out.loss = w_start * start_loss + w_len * length_loss + w_type * type_loss
        if self.edge_head is not None:
            out.loss = out.loss + self._edge_loss(hidden, gold)
        out.start_loss, out.length_loss, out.type_loss = start_loss, length_loss, type_loss
        return out

    def _type_loss(self, hidden: Tensor, start_logits: Tensor, text_mask: Tensor, gold: GoldSpans) -> Tensor:
        """Type CE on gold spans plus the hardest non-gold candidates of each sentence."""
        cfg = self.cfg
        cands = generate_candidates(start_logits, text_mask, cfg.top_k, cfg.candidate_lengths(), cfg.length_bins)
        B = hidden.shape[0]
        weight, target = iou_partial_credit_weights(
            cands.batch_index, cands.start, cands.end, gold.batch, gold.start, gold.end, gold.type
        )  # (N,), (N,)
        exact = weight >= 1.0 - 1e-6
        negative = weight <= 0.0
        # Hard negatives: the non-gold candidates with the highest start logits, per sentence.
        neg_score = torch.where(negative, start_logits[cands.batch_index, cands.start], torch.full_like(weight, -1e9))
        keep_neg = top_per_group(cands.batch_index, neg_score, cfg.hard_negatives, B) & negative
        if cfg.partial_credit:
            partial = ~negative & ~exact  # overlapping a gold span: IoU-weighted credit for its type
        else:
            partial = torch.zeros_like(negative)
        sel = keep_neg | partial
        batch = torch.cat([gold.batch, cands.batch_index[sel]])
        start = torch.cat([gold.start, cands.start[sel]])
        end = torch.cat([gold.end, cands.end[sel]])
        labels = torch.cat([gold.type, torch.where(partial[sel], target[sel], torch.zeros_like(target[sel]))])
        sample_w = torch.cat([torch.ones_like(gold.start, dtype=hidden.dtype), torch.where(
            partial[sel], weight[sel].to(hidden.dtype), torch.ones_like(weight[sel], dtype=hidden.dtype)
        )])
        if batch.numel() == 0:
            return hidden.sum() * 0.0
        logits = self.type_logits(hidden, batch, start, end)  # (S, K+1)
        return focal_cross_entropy(
            logits, labels, label_smoothing=cfg.type_label_smoothing, class_weights=self.type_weights,
            sample_weights=sample_w,
        )

    def _multilabel_type_loss(self, hidden: Tensor, start_logits: Tensor, text_mask: Tensor,
                              gold: GoldSpans) -> Tensor:
        """GlobalPointer's multi-label loss per (sentence, type) over the distinct spans among the
        gold spans and the sentence's candidates (the non-gold ones up to ``hard_negatives``, the
        highest start logits first): what the type scorer faces at prediction."""
        cfg = self.cfg
        B, T = start_logits.shape
        cands = generate_candidates(start_logits, text_mask, cfg.top_k, cfg.candidate_lengths(), cfg.length_bins)
        key = lambda b, s, e: (b.long() * T + s.long()) * T + e.long()  # noqa: E731
        gold_key, cand_key = key(gold.batch, gold.start, gold.end), key(cands.batch_index, cands.start, cands.end)
        is_gold = torch.isin(cand_key, gold_key)
        neg_score = start_logits[cands.batch_index, cands.start].masked_fill(is_gold, -1e9)
        keep = top_per_group(cands.batch_index, neg_score, cfg.hard_negatives, B) & ~is_gold
        keys, row = torch.unique(torch.cat([gold_key, cand_key[keep]]), return_inverse=True)  # grouped by sentence
        if keys.numel() == 0:
            return hidden.sum() * 0.0
        batch, start, end = keys // (T * T), (keys // T) % T, keys % T
        logits = self.type_logits(hidden, batch, start, end)  # (R, K)
        targets = torch.zeros_like(logits, dtype=torch.bool)
        targets[row[: gold_key.numel()], gold.type - 1] = True
        # pad each sentence's rows into (B, K, R_max) for the per-(sentence, type) loss
        first = torch.searchsorted(batch, torch.arange(B, device=batch.device))
        pos = torch.arange(batch.numel(), device=batch.device) - first[batch]
        R = int(pos.max()) + 1
        grid = logits.new_zeros(B, R, self.num_types)
        tgt = torch.zeros(B, R, self.num_types, dtype=torch.bool, device=logits.device)
        mask = torch.zeros(B, R, 1, dtype=torch.bool, device=logits.device)
        grid[batch, pos], tgt[batch, pos], mask[batch, pos] = logits, targets, True
        loss = multilabel_crossentropy(grid.transpose(1, 2), tgt.transpose(1, 2),
                                       mask.expand(B, R, self.num_types).transpose(1, 2))  # (B, K)
        return loss.mean()

    @torch.no_grad()
    def decode(self, input_ids: Tensor, attention_mask: Tensor, text_mask: Tensor) -> DecodedBatch:
        """Candidates -> score -> threshold -> 1D NMS per sentence. Score: p_start * p_len(bin) *
        p_type (softmax), or the best type's sigmoid (multilabel)."""
        cfg = self.cfg
        out = self.forward(input_ids, attention_mask, text_mask)
        text_mask = text_mask.bool()
        cands = generate_candidates(out.start_logits, text_mask, cfg.top_k, cfg.candidate_lengths(), cfg.length_bins)
        b, s, e = cands.batch_index, cands.start, cands.end
        p_start = torch.sigmoid(out.start_logits[b, s])
        p_len = torch.softmax(out.length_logits[b, s].float(), dim=-1).gather(1, cands.bin.unsqueeze(1)).squeeze(1)
        logits = self.type_logits(out.hidden, b, s, e).float()
        if self.no_entity_class:
            p_type, type_id = torch.softmax(logits, dim=-1)[:, 1:].max(dim=-1)
            score = (p_start.float() * p_len * p_type).cpu()
        else:
            score, type_id = torch.sigmoid(logits).max(dim=-1)
            score = score.cpu()
        type_id = (type_id + 1).cpu()
        b, s, e = b.cpu(), s.cpu(), e.cpu()
        B = input_ids.shape[0]
        # "auto": every candidate goes through NMS; the task picks the threshold on dev
        threshold = 0.0 if cfg.score_threshold == "auto" else cfg.score_threshold
        spans: list[list[tuple[int, int, int, float]]] = [[] for _ in range(B)]
        counts = torch.bincount(b, minlength=B).tolist()
        for i in range(B):  # post-processing over a handful of candidates per sentence
            idx = ((b == i) & (score >= threshold)).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            keep = nms_1d(s[idx], e[idx], score[idx], cfg.nms_iou, cfg.max_outputs, cfg.nesting)
            spans[i] = [(int(s[idx[k]]), int(e[idx[k]]), int(type_id[idx[k]]), float(score[idx[k]])) for k in keep]
        trims = None
        if self.edge_head is not None:
            head, tail = (x.argmax(dim=-1).cpu() for x in self.edge_logits(out.hidden))  # (B, T) each
            trims = [[(int(head[i, a]), int(tail[i, b])) for a, b, _, _ in spans[i]] for i in range(B)]
        return DecodedBatch(spans, cands, counts, out.length_logits.argmax(dim=-1).cpu(), trims=trims,
                            candidate_scores=score, candidate_types=type_id)


class SpanFirstHead(NerHead):
    """The design: start head, length-bin head, type head over dynamic top-k candidates, 1D NMS.

    Its losses are shaped by the training data: length-bin weights ``1/log(1.1 + freq)`` (unless
    ``ner.length_class_weights`` is given) and, with ``ner.type_class_weights: auto``, type weights
    with the expected hard negatives counted as class 0; a checkpoint restores them as buffers."""

    name = "span_first"

    @classmethod
    def build(cls, encoder: nn.Module, cfg: RunConfig, labels: dict[str, Any],
              training: TrainingSpans | None = None) -> nn.Module:
        n = len(labels["types"])
        length_w, type_w = class_weights(cfg.ner, training, n) if training is not None else (None, None)
        return SpanFirstModel(encoder, n, cfg.ner, cfg.model.dropout, length_w, type_w)

    @classmethod
    def span_lengths(cls, cfg: RunConfig) -> list[int]:
        return cfg.ner.candidate_lengths()

    @classmethod
    def needs_fitting(cls, cfg: RunConfig) -> bool:
        return not cfg.ner.fitted

    @classmethod
    def threshold_to_calibrate(cls, cfg: RunConfig) -> tuple[str, float] | None:
        return ("ner.score_threshold", 0.3) if cfg.ner.score_threshold == "auto" else None

    @classmethod
    def fit(cls, cfg: RunConfig, lengths: Sequence[int]) -> dict[str, Any]:
        """``auto`` length bins from the training lengths (:func:`fit_length_bins`); ``auto``
        representative lengths: each bin's most frequent training length."""
        ner = cfg.ner
        if ner.length_bins != "auto":
            return {"ner.representative_lengths": bin_modes(lengths, ner.length_bins)}
        bins, reps = fit_length_bins(lengths, ner.length_coverage)
        return {"ner.representative_lengths": reps, "ner.length_bins": [list(b) for b in bins]}

    @classmethod
    def length_bins(cls, cfg: RunConfig) -> list[tuple[int, int]]:
        return list(cfg.ner.length_bins)


def class_weights(ner: NerConfig, training: TrainingSpans, num_types: int) -> tuple[Tensor, Tensor]:
    """(length-bin weights, type weights with class 0 = no entity) from the training spans."""
    gold = training.gold
    if ner.length_class_weights is not None:
        length_w = torch.tensor(ner.length_class_weights, dtype=torch.float)
    else:
        lengths = torch.tensor([e - s + 1 for s, e, _ in gold] or [1])
        counts = torch.bincount(length_to_bin(lengths, ner.length_bins), minlength=len(ner.length_bins))
        length_w = inverse_log_frequency_weights(counts)
    if ner.type_class_weights == "auto":
        type_counts = Counter(t for _, _, t in gold)
        counts = torch.tensor([ner.hard_negatives * training.sentences]
                              + [type_counts.get(i + 1, 0) for i in range(num_types)])
        type_w = inverse_log_frequency_weights(counts)
    else:
        type_w = torch.ones(num_types + 1)
    return length_w.float(), type_w.float()
