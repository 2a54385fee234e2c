"""Span candidates: dynamic top-k start tokens expanded by one representative length per bin.

Training and inference share :func:`generate_candidates`. Token spans are ``(start, end)``
with ``end`` inclusive. Everything here is batched tensor work (no per-sentence loops).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from spanfirst.config import TopKConfig

# ceil(alpha * T) on floats: 0.1 * 30 is 3.0000000000000004, whose ceil would be 4.
_CEIL_EPS = 1e-9


def dynamic_k(num_tokens: Tensor | int, k_min: int = 4, k_max: int = 12, alpha: float = 0.12, beta: int = 2) -> Tensor | int:
    """``k = min(k_max, max(k_min, ceil(alpha * T) + beta))``; an int for an int, else elementwise (long)."""
    if isinstance(num_tokens, Tensor):
        raw = torch.ceil(num_tokens.double() * alpha - _CEIL_EPS).long() + beta
        return raw.clamp(min=k_min, max=k_max)
    return min(k_max, max(k_min, math.ceil(alpha * num_tokens - _CEIL_EPS) + beta))


def length_to_bin(lengths: Tensor, bins: Sequence[tuple[int, int]]) -> Tensor:
    """Bin index of every (inclusive token) length; longer than the last bin -> last bin, < 1 -> bin 0."""
    lengths = torch.as_tensor(lengths)
    highs = torch.tensor([hi for _, hi in bins], device=lengths.device, dtype=torch.long)  # (nbins,)
    idx = (lengths.long().unsqueeze(-1) > highs).sum(dim=-1)  # (...,) number of bins entirely below
    return idx.clamp(max=len(bins) - 1)


@dataclass
class Candidates:
    """Flat candidate spans of a batch, ordered by sentence, then start rank, then bin."""

    batch_index: Tensor  # (N,) long
    start: Tensor  # (N,) long
    end: Tensor  # (N,) long, inclusive
    bin: Tensor  # (N,) long: length bin the span stands for
    rank: Tensor  # (N,) long: rank of the start within its sentence (0 = highest start logit)

    def __len__(self) -> int:
        return int(self.start.numel())


def text_bounds(text_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(first text token, last text token, number of text tokens) per sentence; each (B,).

    Text tokens are one contiguous run; a sentence without text gets first=0, last=-1, n=0.
    """
    mask = text_mask.bool()  # (B, T)
    T = mask.shape[1]
    pos = torch.arange(T, device=mask.device).expand_as(mask)  # (B, T)
    n = mask.sum(dim=1)  # (B,)
    last = torch.where(mask, pos, torch.full_like(pos, -1)).max(dim=1).values  # (B,)
    first = torch.where(mask, pos, torch.full_like(pos, T)).min(dim=1).values  # (B,)
    first = torch.where(n > 0, first, torch.zeros_like(first))
    return first, last, n


def generate_candidates(
    start_logits: Tensor,
    text_mask: Tensor,
    top_k: TopKConfig,
    representative_lengths: Sequence[int],
    length_bins: Sequence[tuple[int, int]] | None = None,
) -> Candidates:
    """Top-k text tokens per sentence (k from :func:`dynamic_k`) expanded by each representative
    length, ends clipped to the sentence's last text token, exact duplicates dropped.

    ``bin`` is the bin whose representative length produced the span (the smallest one when
    clipping made several coincide); with ``length_bins`` it is instead the bin of the span's
    actual (possibly clipped) length.
    """
    mask = text_mask.bool()  # (B, T)
    B, T = start_logits.shape
    device = start_logits.device
    reps = torch.as_tensor(list(representative_lengths), device=device, dtype=torch.long)  # (R,)
    R = reps.numel()
    empty = torch.zeros(0, dtype=torch.long, device=device)
    k_top = min(top_k.k_max, T)
    if B == 0 or k_top == 0 or R == 0:
        return Candidates(empty, empty, empty, empty, empty)

    _, last, n_text = text_bounds(mask)  # (B,)
    k = torch.minimum(dynamic_k(n_text, top_k.k_min, top_k.k_max, top_k.alpha, top_k.beta), n_text)  # (B,)

    masked = start_logits.detach().float().masked_fill(~mask, float("-inf"))  # (B, T)
    top_pos = masked.topk(k_top, dim=1).indices  # (B, k) sorted by logit, best first
    rank = torch.arange(k_top, device=device).expand(B, k_top)  # (B, k)
    keep_start = rank < k.unsqueeze(1)  # (B, k)

    start = top_pos.unsqueeze(-1).expand(B, k_top, R)  # (B, k, R)
    end = torch.minimum(start + reps - 1, last.view(B, 1, 1))  # (B, k, R)
    # Clipping can map several lengths of one start onto the same end: keep the first.
    same_end = end.unsqueeze(-1) == end.unsqueeze(-2)  # (B, k, R, R')
    earlier = torch.ones(R, R, dtype=torch.bool, device=device).tril(diagonal=-1)  # (R, R'): r' < r
    duplicate = (same_end & earlier).any(dim=-1)  # (B, k, R)
    keep = keep_start.unsqueeze(-1) & ~duplicate  # (B, k, R)

    b_idx = torch.arange(B, device=device).view(B, 1, 1).expand(B, k_top, R)
    bins = torch.arange(R, device=device).expand(B, k_top, R)
    ranks = rank.unsqueeze(-1).expand(B, k_top, R)
    start_f, end_f = start[keep], end[keep]  # (N,)
    bin_f = bins[keep] if length_bins is None else length_to_bin(end_f - start_f + 1, length_bins)
    return Candidates(b_idx[keep], start_f, end_f, bin_f, ranks[keep])


def candidate_recall(candidates: Candidates, gold_batch: Tensor, gold_start: Tensor, gold_end: Tensor) -> float:
    """Share of gold spans ``(batch, start, end)`` present exactly among the candidates (0.0 without gold)."""
    if gold_batch.numel() == 0:
        return 0.0
    device = candidates.start.device
    g_b, g_s, g_e = (t.to(device).long() for t in (gold_batch, gold_start, gold_end))
    width = int(max(int(g_e.max()), int(candidates.end.max()) if len(candidates) else 0)) + 2
    key = lambda b, s, e: (b * width + s) * width + e  # noqa: E731
    cand_keys = key(candidates.batch_index, candidates.start, candidates.end)  # (N,)
    hit = torch.isin(key(g_b, g_s, g_e), cand_keys)  # (G,)
    return float(hit.float().mean())


def structural_reach(
    gold_token_spans: Sequence[Sequence[int]],
    representative_lengths: Sequence[int],
    sentence_last: Sequence[int] | None = None,
) -> float:
    """Candidate recall ceiling: share of gold spans reachable with perfect start tokens.

    A span ``(start, end, ...)`` is reachable when its length is a representative length; with
    ``sentence_last`` (the last text token of each span's sentence, one per span) a span ending
    there is also reachable when a longer representative length gets clipped onto it.
    0.0 without gold spans.
    """
    if len(gold_token_spans) == 0:
        return 0.0
    reps = set(int(r) for r in representative_lengths)
    longest = max(reps) if reps else 0
    reached = 0
    for i, span in enumerate(gold_token_spans):
        length = int(span[1]) - int(span[0]) + 1
        if length in reps:
            reached += 1
        elif sentence_last is not None and int(span[1]) == int(sentence_last[i]) and length <= longest:
            reached += 1
    return reached / len(gold_token_spans)


def bin_modes(lengths: Sequence[int], bins: Sequence[tuple[int, int]]) -> list[int]:
    """Each bin's most frequent length among ``lengths`` (the shorter on ties; the bin's low end
    when none falls in it): the representative lengths of those bins."""
    counts = Counter(int(n) for n in lengths)
    return [max(range(lo, hi + 1), key=lambda n: (counts.get(n, 0), -n)) for lo, hi in bins]


def fit_length_bins(lengths: Sequence[int], coverage: float = 0.995, singletons: int = 4,
                    growth: float = 1.5) -> tuple[list[tuple[int, int]], list[int]]:
    """(length bins, representative lengths) fitted to gold span token lengths.

    The last bin ends at the shortest length covering ``coverage`` of the spans, so a start
    expanded into every length of the bins reaches at least that share of them. Lengths
    1..``singletons`` get a bin each (most entities are short, and there the length decision is
    sharp); longer bins widen by ``growth``. A bin's representative length is its most frequent
    length (the shorter on ties). Without lengths: one bin of length 1."""
    counts = Counter(int(n) for n in lengths if n >= 1)
    if not counts:
        return [(1, 1)], [1]
    total, covered, top = sum(counts.values()), 0, max(counts)
    for length in sorted(counts):
        covered += counts[length]
        if covered >= coverage * total - 1e-9:
            top = length
            break
    bins, low = [], 1
    while low <= top:
        high = low if low <= singletons else min(max(low, int(low * growth) - 1), top)
        bins.append((low, high))
        low = high + 1
    return bins, bin_modes(lengths, bins)
