"""The decision threshold chosen on dev: the score above which a predicted span is kept.

Spans are decoded once with every candidate kept (threshold 0); keeping those scoring at least
``t`` is then exactly what decoding at ``t`` gives (a span under ``t`` never suppresses one above
it in the greedy NMS, and the output cap keeps the best), so every threshold is scored from one
decode, in one pass over the spans sorted by score.
"""

from __future__ import annotations

from collections.abc import Sequence

CharSpan = tuple[int, int, str]


def best_threshold(gold: Sequence[Sequence[CharSpan]], predicted: Sequence[Sequence[tuple[int, int, str, float]]],
                   floor: float = 0.0) -> tuple[float, float]:
    """(threshold, strict micro F1 there) maximising strict F1 of ``predicted`` (per sentence:
    ``(start, end, type, score)``, each span once) against ``gold``. Ties: the higher threshold.
    The threshold lies halfway between the lowest score kept and the next one below, so decoding
    again at it keeps the same spans despite float noise; without predictions: (0.5, 0.0)."""
    n_gold = sum(len(set(g)) for g in gold)
    scored = []
    for g, p in zip(gold, predicted):
        truth = set(g)
        scored += [(sc, (a, b, t) in truth) for a, b, t, sc in p if sc >= floor]
    if not scored:
        return max(floor, 0.5), 0.0
    scored.sort(key=lambda x: -x[0])
    best_f1, best_t, tp = -1.0, scored[0][0], 0
    for i, (score, hit) in enumerate(scored):
        tp += hit
        if i + 1 < len(scored) and scored[i + 1][0] == score:
            continue  # a threshold keeps every span of equal score
        f1 = 2 * tp / (i + 1 + n_gold) if n_gold else 0.0
        if f1 > best_f1:
            below = scored[i + 1][0] if i + 1 < len(scored) else max(floor, 0.0)
            best_f1, best_t = f1, (score + below) / 2
    return float(best_t), float(best_f1)
