"""NER then RE on raw text: the entities an NER checkpoint finds, paired as the RE checkpoint was
trained (:class:`~spanfirst.data.documents.PairRules`: its window, type-pair filter and negative
label), classified in batches. What a composed model serves and end-to-end evaluation scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spanfirst.data.documents import Document, DocumentRead, PairRules, relation_rows
from spanfirst.data.types import Span


def pair_rules_of(re_predictor: Any, labels: dict[str, Any]) -> PairRules:
    """The rules the RE checkpoint's own config made its training pairs by (one direction of a
    symmetric label, no negative cap: every candidate pair is classified)."""
    data = re_predictor.cfg.data
    observed = labels.get("relation_type_pairs") if data.pair_types == "observed" else None
    return PairRules(negative_label=re_predictor.negative, window=data.pair_window,
                     window_unit=data.pair_window_unit,
                     type_pairs=frozenset(tuple(p) for p in observed) if observed else None,
                     symmetric=frozenset(data.symmetric_labels), both_directions=True)


@dataclass
class Extractor:
    """An NER predictor and an RE predictor chained; ``rules`` forms the candidate pairs."""

    ner: Any  # NerPredictor
    re: Any  # RePredictor
    rules: PairRules

    def extract(self, texts: Sequence[str], relations: bool = True, min_score: float = 0.0,
                batch_size: int = 64) -> list[dict[str, Any]]:
        """Per text ``{"text", "entities": [{start, end, type, score, text}], "relations": [{"subject": i,
        "object": j, "label", "score"}]}``, entity indexes into ``entities``; relations whose best label
        is the negative one or scores under ``min_score`` are left out."""
        texts = list(texts)
        entities = self.ner.predict(texts, batch_size) if texts else []
        out = [{"text": t, "entities": ents, "relations": []} for t, ents in zip(texts, entities)]
        if not relations:
            return out
        docs = [Document(str(k), t, {str(i): Span(e["start"], e["end"], e["type"]) for i, e in enumerate(ents)}, [])
                for k, (t, ents) in enumerate(zip(texts, entities))]
        rows, _made = relation_rows(DocumentRead(docs, {}), self.rules)
        if not rows:
            return out
        probs = self.re.predict_proba(rows, batch_size)
        for row, p in zip(rows, probs):
            best = int(np.argmax(p))
            label, score = self.re.labels[best], float(p[best])
            if label == self.rules.negative_label or score < min_score:
                continue
            doc, pair = row.id.split(":", 1)
            subject, obj = pair.split(">")
            out[int(doc)]["relations"].append({"subject": int(subject), "object": int(obj), "label": label,
                                               "score": round(score, 6)})
        if self.rules.symmetric:
            for answer in out:
                answer["relations"] = merge_symmetric(answer["relations"], self.rules.symmetric)
        return out


def merge_symmetric(relations: list[dict[str, Any]], symmetric: frozenset[str]) -> list[dict[str, Any]]:
    """One relation per entity pair for a symmetric label: both directions are classified, the
    better-scored one is kept (in its place in the list)."""
    best: dict[tuple[int, int, str], int] = {}  # (entity, entity, label) -> index of the kept one
    for i, rel in enumerate(relations):
        if rel["label"] in symmetric:
            key = (min(rel["subject"], rel["object"]), max(rel["subject"], rel["object"]), rel["label"])
            if key not in best or rel["score"] > relations[best[key]]["score"]:
                best[key] = i
    keep = set(best.values())
    return [r for i, r in enumerate(relations) if r["label"] not in symmetric or i in keep]
