"""Dictionary baseline: label every known entity surface form with its most frequent type.

It is reported beside every NER model: how much does the model add over memorising the
training entities?
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from spanfirst.data.types import Example, Span


class DictionaryBaseline:
    def __init__(self) -> None:
        self.lexicon: dict[str, str] = {}  # surface form -> type
        self._lengths: dict[str, list[int]] = {}  # first character -> surface lengths, longest first

    def fit(self, examples: Iterable[Example]) -> "DictionaryBaseline":
        """Most frequent type per surface form ``text[start:end]`` (ties: sorted first)."""
        seen: dict[str, Counter] = defaultdict(Counter)
        for ex in examples:
            for span in ex.entities:
                surface = ex.text[span.start : span.end]
                if surface.strip():
                    seen[surface][span.type] += 1
        self.lexicon = {s: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for s, c in seen.items()}
        lengths: dict[str, set[int]] = defaultdict(set)
        for surface in self.lexicon:
            lengths[surface[0]].add(len(surface))
        self._lengths = {ch: sorted(ls, reverse=True) for ch, ls in lengths.items()}
        return self

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
