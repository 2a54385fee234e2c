"""The type-pair baseline reported beside every RE model: how much does the sentence add over
knowing only the two entity types?"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from spanfirst.data.types import RelationExample


class TypePairBaseline:
    """Predict the most frequent training relation of each (subject type, object type) pair;
    unseen pairs get the overall most frequent label. Ties go to the label seen first."""

    def __init__(self) -> None:
        self.by_pair: dict[tuple[str, str], str] = {}
        self.fallback: str = ""

    @staticmethod
    def _most_common(counts: Counter, first_seen: dict[str, int]) -> str:
        return max(counts, key=lambda label: (counts[label], -first_seen[label]))

    def fit(self, examples: Iterable[RelationExample]) -> "TypePairBaseline":
        pairs: dict[tuple[str, str], Counter] = {}
        overall: Counter = Counter()
        first_seen: dict[str, int] = {}
        for i, ex in enumerate(examples):
            first_seen.setdefault(ex.label, i)
            pairs.setdefault((ex.subject.type, ex.object.type), Counter())[ex.label] += 1
            overall[ex.label] += 1
        self.by_pair = {pair: self._most_common(c, first_seen) for pair, c in pairs.items()}
        self.fallback = self._most_common(overall, first_seen) if overall else ""
        return self

    def predict(self, examples: Sequence[RelationExample]) -> list[str]:
        return [self.by_pair.get((ex.subject.type, ex.object.type), self.fallback) for ex in examples]


def type_pair_log_prior(subject_types: Sequence[int], object_types: Sequence[int], labels: Sequence[int],
                        num_types: int, num_labels: int, strength: float) -> torch.Tensor:
    """(T + 1, T + 1, C) ``log p(label | subject type, object type)`` from training examples (type
    ids below ``num_types``; id ``num_types`` stands for a type never seen in training): each pair's
    label counts plus ``strength`` pseudo-examples spread as the labels are over all of training,
    so a rare pair leans on the overall distribution and an unseen one is exactly it."""
    counts = torch.zeros(num_types + 1, num_types + 1, num_labels, dtype=torch.float64)
    for s, o, y in zip(subject_types, object_types, labels):
        counts[s, o, y] += 1
    overall = (counts.sum(dim=(0, 1)) + 1.0) / (counts.sum() + num_labels)  # every label some mass
    smoothed = counts + strength * overall
    return (smoothed / smoothed.sum(dim=-1, keepdim=True)).log().float()
