"""End-to-end scores of an NER + RE chain on document-shaped data (entities and relations).

Entities: strict F1 (span and type). Relations, in the two standard settings: *boundaries* (both
entity spans right, and the label) and *strict* (spans, entity types and label right). Beside them
the RE checkpoint's own micro F1 on pairs of the gold entities, so ``relation_loss_from_entities``
is what predicted entities cost. A symmetric label's relation counts once, either direction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from spanfirst.data.documents import DocumentRead, relation_rows
from spanfirst.data.types import Span
from spanfirst.extraction.chain import Extractor
from spanfirst.ner.metrics import prf
from spanfirst.re.metrics import micro_f1


def _scores(gold: set, pred: set) -> dict[str, float]:
    return {**prf(len(gold & pred), len(pred), len(gold)), "gold": len(gold), "predicted": len(pred)}


def score_chain(extractor: Extractor, read: DocumentRead, batch_size: int = 64) -> dict[str, Any]:
    """Flat metrics of the chain on ``read``'s documents (their annotated entities and relations)."""
    docs = read.documents
    negative, symmetric = extractor.rules.negative_label, extractor.rules.symmetric
    predicted = extractor.extract([d.text for d in docs], batch_size=batch_size)
    gold_ents = {(k, s.start, s.end, s.type) for k, d in enumerate(docs) for s in d.entities.values()}
    pred_ents = {(k, e["start"], e["end"], e["type"]) for k, p in enumerate(predicted) for e in p["entities"]}
    gold_b, gold_s = _keys((k, d.entities[r.subject], d.entities[r.object], r.label)
                           for k, d in enumerate(docs) for r in d.relations
                           if r.label != negative and r.subject in d.entities and r.object in d.entities
                           and r.subject != r.object)
    spans = [[Span(e["start"], e["end"], e["type"]) for e in p["entities"]] for p in predicted]
    pred_b, pred_s = _keys((k, spans[k][r["subject"]], spans[k][r["object"]], r["label"])
                           for k, p in enumerate(predicted) for r in p["relations"])
    gold_b, gold_s, pred_b, pred_s = ({_sym(key, symmetric) for key in keys} for keys in (gold_b, gold_s, pred_b, pred_s))
    out: dict[str, Any] = {"documents": len(docs)}
    for name, scores in (("entity", _scores(gold_ents, pred_ents)), ("relation_boundaries", _scores(gold_b, pred_b)),
                         ("relation_strict", _scores(gold_s, pred_s)), ("relation_gold_entities", _gold_entities(extractor, read, batch_size))):
        out.update({f"{name}_{k}": v for k, v in scores.items()})
    out["relation_loss_from_entities"] = out["relation_gold_entities_f1"] - out["relation_strict_f1"]
    return out


def _keys(relations: Iterable[tuple[int, Span, Span, str]]) -> tuple[set, set]:
    boundaries, strict = set(), set()
    for k, s, o, label in relations:
        boundaries.add((k, s.start, s.end, o.start, o.end, label))
        strict.add((k, s.start, s.end, s.type, o.start, o.end, o.type, label))
    return boundaries, strict


def _sym(key: tuple, symmetric: frozenset[str]) -> tuple:
    """A symmetric label's key with its two entities in a fixed order."""
    if key[-1] not in symmetric:
        return key
    body = key[1:-1]
    half = len(body) // 2
    first, second = body[:half], body[half:]
    return (key[0], *min(first, second), *max(first, second), key[-1])


def _gold_entities(extractor: Extractor, read: DocumentRead, batch_size: int) -> dict[str, float]:
    """The RE checkpoint's micro F1 on the pairs of the gold entities (scored once each)."""
    from dataclasses import replace

    rules = replace(extractor.rules, both_directions=False, max_negatives=None)
    rows, _ = relation_rows(read, rules)
    if not rows:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "gold": 0, "predicted": 0}
    labels = extractor.re.labels
    index = {label: i for i, label in enumerate(labels)}
    gold = [index.get(r.label, -1) for r in rows]
    pred = np.argmax(extractor.re.predict_proba(rows, batch_size), axis=1)
    m = micro_f1(gold, pred.tolist(), index[extractor.rules.negative_label])
    return {"precision": m["precision"], "recall": m["recall"], "f1": m["f1"], "gold": m["gold"],
            "predicted": m["predicted"]}
