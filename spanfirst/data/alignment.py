"""Character spans <-> token spans through a fast tokenizer's offset mapping.

Token spans here are ``(start, end)`` with ``end`` inclusive, indices into the encoded
sequence (special tokens included, so index 0 is usually ``<s>``/``[CLS]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spanfirst.data.types import Span


@dataclass
class Encoded:
    """One tokenised text: ids, whitespace-trimmed char offsets, and which tokens are text."""

    text: str
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    text_mask: list[bool]

    @property
    def covered_chars(self) -> int:
        """Characters of the text covered by the kept tokens (less than len(text) when cut)."""
        ends = [b for (a, b), m in zip(self.offsets, self.text_mask) if m]
        return max(ends) if ends else 0


@dataclass
class AlignmentReport:
    """What happened to each gold entity on the way to token spans."""

    entities: int = 0
    aligned: int = 0
    truncated: int = 0  # cut (partly or wholly) by max_length
    unalignable: int = 0  # no token carries any of its characters
    boundary_mismatch: int = 0  # aligned, but its tokens cover more characters than the entity
    examples_truncated: int = 0
    examples_windowed: int = 0  # read as overlapping windows instead of truncated

    def add(self, other: "AlignmentReport") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def trim_offsets(text: str, a: int, b: int) -> tuple[int, int]:
    # SentencePiece/BPE pieces may carry a leading space ("▁word", "Ġword") in their offsets.
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def encode(tokenizer: Any, texts: list[str], max_length: int) -> list[Encoded]:
    """Tokenise a batch (truncating at ``max_length``) and keep trimmed offsets."""
    enc = tokenizer(
        texts, truncation=True, max_length=max_length, return_offsets_mapping=True,
        return_special_tokens_mask=True, add_special_tokens=True,
    )
    out = []
    for i, text in enumerate(texts):
        offsets, mask = [], []
        for (a, b), special in zip(enc["offset_mapping"][i], enc["special_tokens_mask"][i]):
            a, b = trim_offsets(text, a, b) if not special else (0, 0)
            offsets.append((a, b))
            mask.append(bool(not special and a < b))
        out.append(Encoded(text, list(enc["input_ids"][i]), offsets, mask))
    return out


def char_to_token_span(enc: Encoded, start: int, end: int) -> tuple[int, int] | None:
    """Inclusive token span covering chars ``[start, end)``, or None if no token carries them.

    Where several tokens claim a character (a bare "▁" piece and the piece after it share
    offsets), the last one is taken: it is the one that carries the character's text.
    """
    first = last = None
    for i, ((a, b), m) in enumerate(zip(enc.offsets, enc.text_mask)):
        if not m:
            continue
        if a <= start < b:
            first = i
        if a <= end - 1 < b:
            last = i
    if first is None:  # the entity starts inside whitespace or a gap: first token inside it
        inside = [i for i, ((a, b), m) in enumerate(zip(enc.offsets, enc.text_mask)) if m and start <= a < end]
        first = inside[0] if inside else None
    if last is None:
        inside = [i for i, ((a, b), m) in enumerate(zip(enc.offsets, enc.text_mask)) if m and start < b <= end]
        last = inside[-1] if inside else None
    if first is None or last is None or last < first:
        return None
    return first, last


def token_to_char_span(enc: Encoded, start: int, end: int) -> tuple[int, int]:
    """Character span ``[start_char, end_char)`` of an inclusive token span."""
    return enc.offsets[start][0], enc.offsets[end][1]


@dataclass
class AlignedExample:
    """Model-ready form of one NER example."""

    enc: Encoded
    gold: list[tuple[int, int, int]] = field(default_factory=list)  # (tok_start, tok_end, type_id)
    # One window of a longer text (a spanfirst.ner.windows.Window): its content tokens in the
    # whole text; None when the item is the whole (or the truncated) text.
    window: Any = None
    source: int = -1  # index of the example it came from
    # per gold span: characters of its first and of its last token outside the entity (an edge
    # inside a token, see edge_trims); empty: none
    trims: list[tuple[int, int]] = field(default_factory=list)


def align_entities(enc: Encoded, entities: list[Span], type_to_id: dict[str, int]) -> tuple[
    list[tuple[int, int, int]], AlignmentReport
]:
    """Token spans of ``entities``; every entity that cannot be placed is counted, not dropped silently."""
    report = AlignmentReport()
    covered = enc.covered_chars
    gold: set[tuple[int, int, int]] = set()
    for span in entities:
        report.entities += 1
        if span.end > covered:
            report.truncated += 1
            continue
        tok = char_to_token_span(enc, span.start, span.end)
        if tok is None:
            report.unalignable += 1
            continue
        report.aligned += 1
        if token_to_char_span(enc, *tok) != (span.start, span.end):
            report.boundary_mismatch += 1
        gold.add((tok[0], tok[1], type_to_id[span.type]))
    report.examples_truncated = int(covered < len(enc.text.rstrip()))
    return sorted(gold), report


def edge_trims(enc: Encoded, entities: list[Span], gold: list[tuple[int, int, int]],
               type_to_id: dict[str, int]) -> list[tuple[int, int]]:
    """Per ``gold`` token span (as :func:`align_entities` placed ``entities``): how many characters
    of its first token precede the entity and of its last token follow it. "김흥국" in the pieces
    "김", "흥", "국이" ends one character before its last token: (0, 1)."""
    trims: dict[tuple[int, int, int], tuple[int, int]] = {}
    for span in entities:
        tok = char_to_token_span(enc, span.start, span.end)
        if tok is None:
            continue
        a, b = token_to_char_span(enc, *tok)
        trims.setdefault((tok[0], tok[1], type_to_id[span.type]), (max(span.start - a, 0), max(b - span.end, 0)))
    return [trims.get(g, (0, 0)) for g in gold]
