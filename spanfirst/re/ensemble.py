"""Ensembles of saved RE checkpoints: hard voting, soft voting, logit and weighted logit averaging.

Members are aligned to the first member's label order by label name; members whose label sets
differ are an error naming the labels. Weights for ``weighted`` come from the command line, from
each member's dev micro F1, or from a search on the labelled data (then the ensemble's score on
that same data is optimistic, and the report says so).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spanfirst.re.metrics import re_scores

RULES = ("hard", "soft", "logit", "weighted")


@dataclass
class Member:
    name: str
    labels: list[str]
    logits: np.ndarray  # (N, C) in ``labels`` order
    dev_micro_f1: float | None = None  # from the checkpoint's metrics.json, if any


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def align(reference: Sequence[str], labels: Sequence[str], matrix: np.ndarray, name: str = "member") -> np.ndarray:
    """Columns of ``matrix`` (in ``labels`` order) reordered to ``reference`` by label name."""
    ref, own = set(reference), set(labels)
    if ref != own or len(labels) != len(reference):
        raise ValueError(f"{name}: its label set differs from the first member's: missing {sorted(ref - own)}, "
                         f"extra {sorted(own - ref)}")
    index = {label: i for i, label in enumerate(labels)}
    return np.asarray(matrix)[:, [index[label] for label in reference]]


def _weights(weights: Sequence[float] | None, m: int) -> np.ndarray:
    if weights is None:
        return np.full(m, 1.0 / m)
    w = np.asarray(weights, dtype=float)
    if w.shape != (m,) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {m} non-negative numbers with a positive sum, got {list(weights)}")
    return w / w.sum()


def hard_vote(logits: Sequence[np.ndarray]) -> np.ndarray:
    """Vote shares of each member's argmax; ties between labels go to the higher mean probability
    (a 1e-3 share of it is added before renormalising)."""
    n, c = logits[0].shape
    votes = np.zeros((n, c))
    for x in logits:
        votes[np.arange(n), x.argmax(axis=1)] += 1.0
    scores = votes / len(logits) + 1e-3 * soft_vote(logits)
    return scores / scores.sum(axis=1, keepdims=True)


def soft_vote(logits: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """(Weighted) mean of the members' probabilities."""
    w = _weights(weights, len(logits))
    return sum(wi * _softmax(np.asarray(x, dtype=float)) for wi, x in zip(w, logits))


def logit_average(logits: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Softmax of the (weighted) mean of the members' logits."""
    w = _weights(weights, len(logits))
    return _softmax(sum(wi * np.asarray(x, dtype=float) for wi, x in zip(w, logits)))


def combine(rule: str, logits: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """(N, C) ensemble probabilities under ``rule``."""
    if rule == "hard":
        return hard_vote(logits)
    if rule == "soft":
        return soft_vote(logits)
    if rule == "logit":
        return logit_average(logits)
    if rule == "weighted":
        return logit_average(logits, weights)
    raise ValueError(f"unknown ensemble rule '{rule}'; known: {RULES}")


def f1_weights(scores: Sequence[float | None]) -> list[float]:
    """Weights proportional to each member's dev micro F1 (equal if none is positive)."""
    if any(s is None for s in scores):
        raise ValueError("--weights f1 needs every member's dev micro F1 (labelled data or metrics.json)")
    s = np.asarray(scores, dtype=float)
    return (s / s.sum()).tolist() if s.sum() > 0 else [1.0 / len(s)] * len(s)


def search_weights(logits: Sequence[np.ndarray], gold: Sequence[int], labels: list[str], negative: str,
                   step: float = 0.1, rounds: int = 3) -> tuple[list[float], float]:
    """Weights maximising micro F1 (then AUPRC) of weighted logit averaging on labelled data:
    the simplex grid at ``step`` for up to 4 members, coordinate search beyond."""
    m = len(logits)

    def score(w: Sequence[float]) -> tuple[float, float]:
        s = re_scores(gold, logit_average(logits, w), labels, negative)
        return s["micro"]["f1"], s["auprc"]

    units = int(round(1 / step))
    if m <= 4:
        grid = [c for c in itertools.product(range(units + 1), repeat=m) if sum(c) == units]
        scored = [(score([x / units for x in c]), c) for c in grid]
        (best_f1, _), best = max(scored, key=lambda t: t[0])
        return [x / units for x in best], best_f1
    w = np.full(m, 1.0 / m)
    best_score = score(w)
    for _ in range(rounds):
        improved = False
        for i in range(m):
            for v in np.linspace(0.0, 1.0, units + 1):
                cand = w.copy()
                cand[i] = v
                if cand.sum() <= 0:
                    continue
                s = score(cand / cand.sum())
                if s > best_score:
                    best_score, w, improved = s, cand / cand.sum(), True
        if not improved:
            break
    return w.tolist(), best_score[0]


def _row(name: str, scores: dict[str, Any]) -> dict[str, Any]:
    micro = scores["micro"]
    return {"name": name, "micro_f1": micro["f1"], "micro_precision": micro["precision"],
            "micro_recall": micro["recall"], "auprc": scores["auprc"], "accuracy": scores["accuracy"]}


def format_table(rows: list[dict[str, Any]]) -> str:
    cols = ["micro_f1", "micro_precision", "micro_recall", "auprc", "accuracy"]
    width = max([len(r["name"]) for r in rows] + [6])
    lines = [f"{'model':<{width}}  " + "  ".join(f"{c:>15}" for c in cols)]
    for r in rows:
        lines.append(f"{r['name']:<{width}}  " + "  ".join(f"{r[c]:>15.4f}" for c in cols))
    return "\n".join(lines)


def ensemble_report(members: Sequence[Member], rule: str, weights: str | Sequence[float] | None,
                    gold_labels: Sequence[str] | None, negative: str) -> tuple[dict[str, Any], np.ndarray]:
    """(report, ensemble probabilities) for members already run on the same examples."""
    if not members:
        raise ValueError("an ensemble needs at least one checkpoint")
    if rule not in RULES:
        raise ValueError(f"unknown ensemble rule '{rule}'; known: {RULES}")
    labels = members[0].labels
    logits = [align(labels, m.labels, m.logits, m.name) for m in members]
    labelled = gold_labels is not None
    gold = [labels.index(g) for g in gold_labels] if labelled else None
    rows = [_row(m.name, re_scores(gold, _softmax(x.astype(float)), labels, negative)) for m, x in zip(members, logits)] \
        if labelled else []
    report: dict[str, Any] = {"rule": rule, "labels": labels, "members": [m.name for m in members]}
    used: list[float] | None = None
    if rule == "weighted":
        if weights is None or weights == "f1":
            f1s = [r["micro_f1"] for r in rows] if labelled else [m.dev_micro_f1 for m in members]
            used = f1_weights(f1s)
            report["weights_from"] = "member micro F1 on this data" if labelled else "member dev micro F1 (metrics.json)"
        elif weights == "search":
            if not labelled:
                raise ValueError("--weights search needs labelled data")
            used, _ = search_weights(logits, gold, labels, negative)
            report["weights_from"] = "searched on this data (the ensemble score here is optimistic)"
        else:
            used = _weights(list(weights), len(members)).tolist()
            report["weights_from"] = "given"
    elif weights is not None:
        raise ValueError(f"weights apply to the 'weighted' rule only, not '{rule}'")
    report["weights"] = used
    probs = combine(rule, logits, used)
    if labelled:
        scores = re_scores(gold, probs, labels, negative)
        rows.append(_row(f"ensemble ({rule})", scores))
        report["ensemble"] = scores
    report["table"] = rows
    return report, probs


def run_ensemble(checkpoints: Sequence[str | Path], data: str | Path, rule: str,
                 weights: str | Sequence[float] | None = None, out: str | Path | None = None,
                 batch_size: int = 64, fmt: str = "auto") -> dict[str, Any]:
    """Run every checkpoint on ``data``, combine, write ``ensemble_report.json`` and
    ``submission.csv`` to ``out``; returns the report (also printed as a table)."""
    from spanfirst.re.predictor import RePredictor, write_submission
    from spanfirst.re.reader import read_re_as_configured

    predictors = [RePredictor.load(c) for c in checkpoints]
    first = predictors[0]
    read = read_re_as_configured(data, first.cfg.data, fmt, require_label=False)
    examples = read.examples
    labelled = bool(examples) and all(ex.label in first.labels for ex in examples)
    members = []
    for path, p in zip(checkpoints, predictors):
        metrics_file = Path(path) / "metrics.json"
        dev_f1 = None
        if metrics_file.is_file():
            dev_f1 = json.loads(metrics_file.read_text(encoding="utf-8")).get("dev_micro_f1")
        members.append(Member(str(path), p.labels, p.logits(examples, batch_size), dev_f1))
    report, probs = ensemble_report(members, rule, weights, [ex.label for ex in examples] if labelled else None,
                                    first.negative)
    report.update({"data": str(data), "examples": len(examples), "labelled": labelled, "skipped_rows": read.skipped})
    out = Path(out or "runs/ensemble")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ensemble_report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    write_submission(out / "submission.csv", [ex.id for ex in examples], probs, report["labels"])
    if report["table"]:
        print(format_table(report["table"]))
    if report["weights"] is not None:
        print("weights:", ", ".join(f"{w:.3f}" for w in report["weights"]), f"({report.get('weights_from')})")
    print(f"report: {out / 'ensemble_report.json'}\nsubmission: {out / 'submission.csv'}")
    return report
