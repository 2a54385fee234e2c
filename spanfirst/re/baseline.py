"""The type-pair baseline reported beside every RE model: how much does the sentence add over
knowing only the two entity types?"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

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
