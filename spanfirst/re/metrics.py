"""KLUE-RE metrics with numpy only: micro F1 without the negative class, AUPRC, per-class scores.

Scores are fractions in [0, 1] like the NER metrics (KLUE's leaderboard prints them x100).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def micro_f1(gold: Sequence[int], pred: Sequence[int], negative: int = 0) -> dict[str, float]:
    """Micro P/R/F1 over every label but ``negative`` (sklearn ``f1_score(average="micro",
    labels=all-but-negative)``): a true positive is a correct non-negative prediction."""
    g, p = np.asarray(gold), np.asarray(pred)
    tp = int(np.sum((g == p) & (g != negative)))
    n_pred, n_gold = int(np.sum(p != negative)), int(np.sum(g != negative))
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "predicted": n_pred, "gold": n_gold}


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as sklearn's ``average_precision_score``:
    sum over distinct thresholds of (R_n - R_{n-1}) * P_n. NaN when there are no positives."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=float)
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_threshold = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # tied scores share a threshold
    tps = np.cumsum(y)[last_of_threshold]
    fps = last_of_threshold + 1 - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def auprc(gold: Sequence[int], probs: np.ndarray) -> tuple[float, list[float]]:
    """Mean one-vs-rest average precision over the classes that have positives (negative included);
    also the per-class values (NaN for classes without positives)."""
    g = np.asarray(gold)
    probs = np.asarray(probs, dtype=float)  # (N, C)
    per_class = [average_precision(g == c, probs[:, c]) for c in range(probs.shape[1])]
    present = [v for v in per_class if not np.isnan(v)]
    return (float(np.mean(present)) if present else 0.0), per_class


def confusion(gold: Sequence[int], pred: Sequence[int], n: int) -> list[list[int]]:
    """(C, C) counts: rows gold, columns predicted."""
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (np.asarray(gold, dtype=int), np.asarray(pred, dtype=int)), 1)
    return matrix.tolist()


def per_class(gold: Sequence[int], pred: Sequence[int], labels: list[str]) -> dict[str, dict[str, float]]:
    g, p = np.asarray(gold), np.asarray(pred)
    out = {}
    for c, name in enumerate(labels):
        tp = int(np.sum((g == c) & (p == c)))
        n_pred, n_gold = int(np.sum(p == c)), int(np.sum(g == c))
        prec = tp / n_pred if n_pred else 0.0
        rec = tp / n_gold if n_gold else 0.0
        out[name] = {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
                     "support": n_gold, "predicted": n_pred}
    return out


def re_scores(gold: Sequence[int], probs: np.ndarray, labels: list[str], negative: str) -> dict[str, Any]:
    """Everything the report shows for one set of probabilities (argmax decides the label)."""
    probs = np.asarray(probs, dtype=float)
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=int)
    neg = labels.index(negative)
    auc, auc_per_class = auprc(gold, probs) if len(probs) else (0.0, [])
    return {
        "micro": micro_f1(gold, pred, neg),
        "auprc": auc,
        "accuracy": float(np.mean(np.asarray(gold) == pred)) if len(pred) else 0.0,
        "per_class": per_class(gold, pred, labels),
        "auprc_per_class": {name: (None if np.isnan(v) else v) for name, v in zip(labels, auc_per_class)},
        "confusion": confusion(gold, pred, len(labels)),
    }
