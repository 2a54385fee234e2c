"""Span metrics on per-sentence lists of ``(start, end, type)`` tuples (any consistent span
convention: character or token offsets)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

SpanTuple = tuple[Any, ...]  # (start, end, type, ...): extra fields (e.g. a score) are ignored


def prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    """Precision, recall, F1; each 0.0 when undefined."""
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f}


def _report(tp: Counter, n_pred: Counter, n_gold: Counter) -> dict[str, Any]:
    total_tp, total_pred, total_gold = sum(tp.values()), sum(n_pred.values()), sum(n_gold.values())
    out: dict[str, Any] = prf(total_tp, total_pred, total_gold)
    out.update(tp=total_tp, n_pred=total_pred, n_gold=total_gold)
    types = sorted(set(n_pred) | set(n_gold), key=str)
    out["per_type"] = {t: {**prf(tp[t], n_pred[t], n_gold[t]), "support": n_gold[t]} for t in types}
    return out


def _check(gold: Sequence, pred: Sequence) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences, pred {len(pred)}")


def strict_f1(gold: Sequence[Sequence[SpanTuple]], pred: Sequence[Sequence[SpanTuple]]) -> dict[str, Any]:
    """Exact (start, end, type) matches, micro-averaged; duplicates count once per copy.

    Returns precision, recall, f1, tp, n_pred, n_gold and per_type {type: precision, recall, f1, support}.
    """
    _check(gold, pred)
    tp: Counter = Counter()
    n_pred: Counter = Counter()
    n_gold: Counter = Counter()
    for g, p in zip(gold, pred):
        g_c = Counter((s[0], s[1], s[2]) for s in g)
        p_c = Counter((s[0], s[1], s[2]) for s in p)
        for (_, _, t), n in (g_c & p_c).items():
            tp[t] += n
        for (_, _, t), n in g_c.items():
            n_gold[t] += n
        for (_, _, t), n in p_c.items():
            n_pred[t] += n
    return _report(tp, n_pred, n_gold)


def lenient_f1(
    gold: Sequence[Sequence[SpanTuple]], pred: Sequence[Sequence[SpanTuple]], tolerance: int = 1
) -> dict[str, Any]:
    """A prediction matches an unmatched gold span of the same type when both boundaries are within
    ``tolerance``; one-to-one, greedy by closeness (sum of boundary distances, then larger of the two,
    then order). Same output shape as :func:`strict_f1`."""
    _check(gold, pred)
    tp: Counter = Counter()
    n_pred: Counter = Counter()
    n_gold: Counter = Counter()
    for g, p in zip(gold, pred):
        for s in g:
            n_gold[s[2]] += 1
        for s in p:
            n_pred[s[2]] += 1
        pairs = []
        for i, ps in enumerate(p):
            for j, gs in enumerate(g):
                if ps[2] != gs[2]:
                    continue
                ds, de = abs(ps[0] - gs[0]), abs(ps[1] - gs[1])
                if ds <= tolerance and de <= tolerance:
                    pairs.append((ds + de, max(ds, de), i, j))
        used_p: set[int] = set()
        used_g: set[int] = set()
        for _, _, i, j in sorted(pairs):
            if i in used_p or j in used_g:
                continue
            used_p.add(i)
            used_g.add(j)
            tp[p[i][2]] += 1
    return _report(tp, n_pred, n_gold)


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> list[list[int]]:
    """``m[true][pred]`` counts; labels must lie in ``[0, n_classes)``."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    m = [[0] * n_classes for _ in range(n_classes)]
    for t, q in zip(y_true, y_pred):
        t, q = int(t), int(q)
        if not (0 <= t < n_classes and 0 <= q < n_classes):
            raise ValueError(f"label pair ({t}, {q}) outside [0, {n_classes})")
        m[t][q] += 1
    return m

