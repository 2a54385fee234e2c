"""Dictionary baseline: label every known entity surface form with its most frequent type.

It is reported beside every NER model: how much does the model add over memorising the
training entities? ``min_precision`` keeps only the forms that are annotated as entities in at
least that share of their occurrences in the training texts (0.5 by default: "Apple" stays if
half of the times it appears it is marked), which makes it the strong floor a model must beat;
0 keeps every form.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from spanfirst.data.types import Example, Span


class DictionaryBaseline:
    def __init__(self, min_precision: float = 0.5) -> None:
        self.min_precision = min_precision
        self.lexicon: dict[str, str] = {}  # surface form -> type
        self._lengths: dict[str, list[int]] = {}  # first character -> surface lengths, longest first

    def fit(self, examples: Iterable[Example]) -> "DictionaryBaseline":
        """Most frequent type per surface form ``text[start:end]`` (ties: sorted first)."""
        examples = list(examples)
        seen: dict[str, Counter] = defaultdict(Counter)
        for ex in examples:
            for span in ex.entities:
                surface = ex.text[span.start : span.end]
                if surface.strip():
                    seen[surface][span.type] += 1
        self.lexicon = {s: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for s, c in seen.items()}
        self._index()
        if self.min_precision > 0 and self.lexicon:
            occurrences = self._occurrences(ex.text for ex in examples)
            self.lexicon = {s: t for s, t in self.lexicon.items()
                            if sum(seen[s].values()) >= self.min_precision * max(occurrences.get(s, 0), 1)}
            self._index()
        return self

    def _index(self) -> None:
        lengths: dict[str, set[int]] = defaultdict(set)
        for surface in self.lexicon:
            lengths[surface[0]].add(len(surface))
        self._lengths = {ch: sorted(ls, reverse=True) for ch, ls in lengths.items()}

    def _occurrences(self, texts: Iterable[str]) -> Counter:
        """How often each known form appears in ``texts`` (every position, overlaps included)."""
        found: Counter = Counter()
        for text in texts:
            n = len(text)
            for i, ch in enumerate(text):
                for length in self._lengths.get(ch, ()):
                    if i + length <= n and text[i : i + length] in self.lexicon:
                        found[text[i : i + length]] += 1
        return found

    def predict(self, text: str) -> list[Span]:
        """Known surface forms, scanned left to right, longest match first, non-overlapping."""
        out: list[Span] = []
        i, n = 0, len(text)
        while i < n:
            for length in self._lengths.get(text[i], ()):
                if i + length <= n:
                    surface = text[i : i + length]
                    if surface in self.lexicon:
                        out.append(Span(i, i + length, self.lexicon[surface]))
                        i += length
                        break
            else:
                i += 1
        return out
