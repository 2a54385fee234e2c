"""The canonical in-memory form every reader produces and nothing downstream looks past."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Span:
    """A labelled character span: ``text[start:end]``, end exclusive."""

    start: int
    end: int
    type: str


@dataclass
class Example:
    """One NER example: a text and its entity spans (sorted, deduplicated)."""

    text: str
    entities: list[Span] = field(default_factory=list)
    id: str = ""

    def __post_init__(self) -> None:
        self.entities = sorted(set(self.entities))


@dataclass(frozen=True)
class RelationExample:
    """One RE example: a sentence, its subject and object spans, and the relation label."""

    text: str
    subject: Span
    object: Span
    label: str
    id: str = ""
