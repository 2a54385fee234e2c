"""Document-shaped annotation, as annotation tools export it: a text, all its entities (each with an
id) and the relations between some of them (:mod:`spanfirst.data.annotation_tools` reads them).

One such file trains both tasks: NER reads each document's entities (:func:`ner_examples`); RE
reads a row for every ordered pair of entities of a text (:func:`relation_rows`): an annotated
relation gives its label, every other pair the negative label, as :class:`PairRules` say (a window,
observed type pairs, a seeded cap on negatives, symmetric labels).
"""

from __future__ import annotations

import bisect
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from spanfirst.data.offsets import Mention, decide_unit, to_index
from spanfirst.data.types import Example, RelationExample, Span
from spanfirst.errors import DataError


@dataclass(frozen=True)
class RawEntity:
    """An entity as the file wrote it (offsets in the file's unit, end exclusive)."""

    id: str
    start: int
    end: int
    type: str
    surface: str | None  # the entity's text, where the file gives it
    where: str  # the field naming it in errors


@dataclass(frozen=True)
class Relation:
    subject: str  # entity ids
    object: str
    label: str
    where: str


@dataclass
class RawDocument:
    """One text as read, before offsets are converted: ``source`` and ``line`` name it in errors."""

    source: str
    line: int | None
    unit: str  # "line", "task", ...: how ``line`` is named
    id: str
    text: str
    entities: list[RawEntity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)


@dataclass
class Document:
    id: str
    text: str
    entities: dict[str, Span]  # id -> span, python indexes, end exclusive
    relations: list[Relation]


@dataclass
class DocumentRead:
    documents: list[Document]
    notes: dict[str, Any]


def resolve(raws: Sequence[RawDocument], notes: dict[str, Any], offset_unit: str = "auto",
            on_mismatch: str = "fail") -> DocumentRead:
    """Decide the file's offset unit (reported in ``notes``), convert every entity to Python
    indexes and check its text; an entity whose text does not match fails the read or
    (``on_mismatch: skip``) is dropped and counted, with the relations that name it. Entities whose
    text starts or ends with whitespace are counted, never trimmed."""
    texts = [r.text for r in raws]
    mentions = [Mention(i, e.start, e.end, e.surface) for i, r in enumerate(raws) for e in r.entities]
    unit, why = decide_unit(texts, mentions, offset_unit)
    notes.update(offset_unit=unit, offset_unit_decided_by=why)
    docs, skipped, edge = [], [], []
    for raw in raws:
        spans, lost = {}, set()
        for e in raw.entities:
            a, b = to_index(raw.text, e.start, unit), to_index(raw.text, e.end, unit)
            problem = None
            if a is None or b is None or a >= b:
                problem = (f"offsets [{e.start}, {e.end}) counted in {unit.replace('_', ' ')} do not delimit a span "
                           f"of the text ({len(raw.text)} characters)")
            elif e.surface is not None and raw.text[a:b] != e.surface:
                problem = (f"the entity text {e.surface!r} is {raw.text[a:b]!r} at [{e.start}, {e.end}) counted in "
                           f"{unit.replace('_', ' ')} (set data.offset_unit if the file counts otherwise)")
            if problem:
                if on_mismatch == "fail":
                    raise DataError(raw.source, raw.line, e.where, problem, unit=raw.unit)
                lost.add(e.id)
                skipped.append(f"{raw.source}, {raw.unit} {raw.line}, {e.where}: {problem}")
                continue
            span = Span(a, b, e.type)
            if raw.text[a:b] != raw.text[a:b].strip():
                edge.append(f"{raw.unit} {raw.line} {e.where}: {raw.text[a:b]!r}")
            spans[e.id] = span
        rels = [r for r in raw.relations if r.subject not in lost and r.object not in lost]
        docs.append(Document(raw.id, raw.text, spans, rels))
    if skipped:
        notes.update(entities_skipped=len(skipped), entities_skipped_why=skipped[:5])
    if edge:
        notes.update(entities_with_edge_whitespace=len(edge), edge_whitespace=edge[:5])
    return DocumentRead(docs, notes)


def ner_examples(read: DocumentRead) -> list[Example]:
    """Each document's entities as an NER example (relations are not NER's)."""
    return [Example(d.text, list(d.entities.values()), d.id) for d in read.documents]


def count_layers(read: DocumentRead) -> dict[str, int]:
    """``entities`` and ``relations`` in the documents (what the data summary reports first)."""
    return {"documents": len(read.documents), "entities": sum(len(d.entities) for d in read.documents),
            "relations": sum(len(d.relations) for d in read.documents)}


# -- relation rows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairRules:
    """How the ordered entity pairs of a text become RE rows."""

    negative_label: str = "no_relation"
    window: int | None = None  # None: every pair of the text
    window_unit: str = "sentences"  # sentences: at most window - 1 sentence boundaries apart; characters: gap
    type_pairs: frozenset[tuple[str, str]] | None = None  # negatives kept only for these; None: all
    max_negatives: int | None = None  # per text, a seeded sample
    seed: int = 0
    symmetric: frozenset[str] = frozenset()
    both_directions: bool = True  # a symmetric relation: a positive row each way (training) or one (scoring)
    types_from_read: bool = False  # type_pairs: those observed in the file being read (the training file)


_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")


def sentence_starts(text: str) -> list[int]:
    """Where each sentence starts: after ., !, ?, 。 and alike followed by whitespace, or a line break."""
    return [0] + [m.end() for m in _SENTENCE_END.finditer(text) if m.end() < len(text)]


def _overlap(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def observed_type_pairs(read: DocumentRead, negative_label: str) -> frozenset[tuple[str, str]]:
    """(subject type, object type) of every annotated relation (the ``pair_types: observed`` set)."""
    out = set()
    for d in read.documents:
        for r in d.relations:
            if r.label != negative_label and r.subject in d.entities and r.object in d.entities:
                out.add((d.entities[r.subject].type, d.entities[r.object].type))
    return frozenset(out)


def relation_rows(read: DocumentRead, rules: PairRules) -> tuple[list[RelationExample], dict[str, int]]:
    """The RE rows of every document and what making them did (counts for the data summary)."""
    stats: Counter[str] = Counter()
    rows: list[RelationExample] = []
    for k, doc in enumerate(read.documents):
        rows.extend(_document_rows(k, doc, rules, stats))
    order = ("pairs_made", "positives", "negatives_kept", "negatives_dropped_type_pair", "negatives_dropped_cap",
             "relations_outside_window", "relations_missing_entity", "relations_overlapping_entities",
             "relations_conflicting", "relations_duplicate")
    return rows, {key: stats[key] for key in order if stats[key] or key in order[:3]}


def _gold(doc: Document, rules: PairRules, stats: Counter[str]) -> tuple[dict[tuple[str, str], str], set[tuple[str, str]]]:
    """(pair -> annotated label, pairs read as neither: a symmetric relation's reverse when scored once)."""
    gold: dict[tuple[str, str], str] = {}
    unscored: set[tuple[str, str]] = set()
    for r in doc.relations:
        a, b = doc.entities.get(r.subject), doc.entities.get(r.object)
        if a is None or b is None:
            stats["relations_missing_entity"] += 1
            continue
        if r.subject == r.object or _overlap(a, b):
            stats["relations_overlapping_entities"] += 1
            continue
        pairs = [(r.subject, r.object)]
        if r.label in rules.symmetric:
            if rules.both_directions:
                pairs.append((r.object, r.subject))
            elif (r.object, r.subject) not in gold:
                unscored.add((r.object, r.subject))
        for pair in pairs:
            if pair in gold:
                stats["relations_duplicate" if gold[pair] == r.label else "relations_conflicting"] += 1
                continue
            gold[pair] = r.label
            unscored.discard(pair)
    return gold, unscored


def _within(rules: PairRules, a: Span, b: Span, starts: list[int]) -> bool:
    if rules.window is None:
        return True
    if rules.window_unit == "characters":
        return max(a.start, b.start) - min(a.end, b.end) <= rules.window
    apart = abs(bisect.bisect_right(starts, a.start) - bisect.bisect_right(starts, b.start))
    return apart < rules.window


def _document_rows(k: int, doc: Document, rules: PairRules, stats: Counter[str]) -> list[RelationExample]:
    gold, unscored = _gold(doc, rules, stats)
    starts = sentence_starts(doc.text) if rules.window is not None and rules.window_unit == "sentences" else []
    for (s, o) in list(gold):
        if not _within(rules, doc.entities[s], doc.entities[o], starts):
            stats["relations_outside_window"] += 1
            del gold[(s, o)]
    ids = sorted(doc.entities, key=lambda i: (doc.entities[i].start, doc.entities[i].end, i))
    position = {i: n for n, i in enumerate(ids)}
    positives, negatives = [], []
    for s in ids:
        for o in ids:
            a, b = doc.entities[s], doc.entities[o]
            if s == o or _overlap(a, b) or (s, o) in unscored or not _within(rules, a, b, starts):
                continue
            stats["pairs_made"] += 1
            label = gold.get((s, o), rules.negative_label)
            if label != rules.negative_label:
                positives.append((s, o, label))
            elif rules.type_pairs is not None and (a.type, b.type) not in rules.type_pairs:
                stats["negatives_dropped_type_pair"] += 1
            else:
                negatives.append((s, o, label))
    if rules.max_negatives is not None and len(negatives) > rules.max_negatives:
        stats["negatives_dropped_cap"] += len(negatives) - rules.max_negatives
        keep = set(random.Random(f"{rules.seed}:{k}").sample(range(len(negatives)), rules.max_negatives))
        negatives = [n for i, n in enumerate(negatives) if i in keep]
    stats["positives"] += len(positives)
    stats["negatives_kept"] += len(negatives)
    ident = doc.id or str(k + 1)
    chosen = sorted(positives + negatives, key=lambda p: (position[p[0]], position[p[1]]))
    return [RelationExample(doc.text, doc.entities[s], doc.entities[o], label, f"{ident}:{s}>{o}")
            for s, o, label in chosen]
