"""Entity markers: insert them into the sentence and remember where everything landed.

Marking inserts text, so every character offset after an insertion moves. :func:`mark`
returns the marked text together with the exact character spans of the subject and the object
inside it and the position of each entity's opening marker, so token positions can be read off
the tokenizer's offset mapping instead of being guessed.

Styles (``re.marker_style``):

- ``none``: the sentence as it is; the "marker" position is the entity's first character.
- ``entity``: ``[E1] subject [/E1]`` and ``[E2] object [/E2]`` (4 added special tokens).
- ``typed_entity``: ``[E1-ORG] subject [/E1-ORG]``, ``[E2-PER] object [/E2-PER]`` for the entity
  types seen in training (added special tokens; unseen types fall back to the untyped markers).
- ``typed_punct``: ``@ * ORG * subject @`` and ``# ^ PER ^ object #`` (Zhou & Chen, "An Improved
  Baseline for Sentence-level Relation Extraction"): plain punctuation, no new tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from spanfirst.data.types import RelationExample, Span

MARKER_STYLES = ("none", "entity", "typed_entity", "typed_punct")
_UNTYPED = {"subject": ("[E1]", "[/E1]"), "object": ("[E2]", "[/E2]")}


@dataclass(frozen=True)
class Marked:
    """A marked sentence; spans are ``[start, end)`` character offsets into ``text``."""

    text: str
    subject: tuple[int, int]  # the subject's own characters
    object: tuple[int, int]
    subject_marker: int  # first character of the subject's opening marker (entity start for "none")
    object_marker: int
    subject_region: tuple[int, int]  # opening marker start .. closing marker end
    object_region: tuple[int, int]


def marker_vocab(style: str, entity_types: Iterable[str]) -> list[str]:
    """Special tokens a style needs added to the tokenizer (empty for ``none``/``typed_punct``)."""
    if style not in MARKER_STYLES:
        raise ValueError(f"unknown marker style '{style}'; known: {MARKER_STYLES}")
    if style == "entity":
        return [t for pair in _UNTYPED.values() for t in pair]
    if style == "typed_entity":
        typed = [f"[{tag}-{t}]" for t in sorted(set(entity_types)) for tag in ("E1", "/E1", "E2", "/E2")]
        return typed + [t for pair in _UNTYPED.values() for t in pair]
    return []


def marker_strings(style: str, role: str, etype: str, vocab: Iterable[str] = ()) -> tuple[str, str]:
    """(opening, closing) marker text of one entity; ``role`` is ``subject`` or ``object``."""
    if style == "none":
        return "", ""
    if style == "entity":
        return _UNTYPED[role]
    if style == "typed_entity":
        tag = "E1" if role == "subject" else "E2"
        opening, closing = f"[{tag}-{etype}]", f"[/{tag}-{etype}]"
        return (opening, closing) if opening in set(vocab) else _UNTYPED[role]
    if style == "typed_punct":
        return (f"@ * {etype} *", "@") if role == "subject" else (f"# ^ {etype} ^", "#")
    raise ValueError(f"unknown marker style '{style}'; known: {MARKER_STYLES}")


def mark(example: RelationExample, style: str, vocab: Iterable[str] = ()) -> Marked:
    """Insert the style's markers around subject and object (nested or adjacent entities included)."""
    vocab = list(vocab)
    ents: dict[str, Span] = {"subject": example.subject, "object": example.object}
    strings = {role: marker_strings(style, role, span.type, vocab) for role, span in ents.items()}
    # Events at one position: closings before openings (adjacent entities), outer opens first,
    # inner closes first (nested entities).
    events = []
    for role, span in ents.items():
        events.append((span.start, 1, -span.end, role, "open"))
        events.append((span.end, 0, -span.start, role, "close"))
    events.sort()
    text, out, cursor = example.text, [], 0
    length = 0
    pos: dict[tuple[str, str], int] = {}
    for at, _order, _tie, role, kind in events:
        out.append(text[cursor:at])
        length += at - cursor
        cursor = at
        opening, closing = strings[role]
        if kind == "open":
            pos[(role, "marker")] = length
            piece = f"{opening} " if opening else ""
            pos[(role, "start")] = length + len(piece)
        else:
            pos[(role, "end")] = length
            piece = f" {closing}" if closing else ""
            pos[(role, "region_end")] = length + len(piece)
        out.append(piece)
        length += len(piece)
    out.append(text[cursor:])
    return Marked(
        "".join(out),
        subject=(pos[("subject", "start")], pos[("subject", "end")]),
        object=(pos[("object", "start")], pos[("object", "end")]),
        subject_marker=pos[("subject", "marker")], object_marker=pos[("object", "marker")],
        subject_region=(pos[("subject", "marker")], pos[("subject", "region_end")]),
        object_region=(pos[("object", "marker")], pos[("object", "region_end")]),
    )


def add_marker_tokens(tokenizer: Any, tokens: Sequence[str]) -> int:
    """Add the marker vocabulary as special tokens, in order (so ids are the same in every worker);
    a no-op for tokens a saved tokenizer already has."""
    vocab = tokenizer.get_vocab()
    new = [t for t in tokens if t not in vocab]
    return tokenizer.add_tokens(new, special_tokens=True) if new else 0
