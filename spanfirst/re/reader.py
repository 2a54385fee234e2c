"""Relation-extraction readers and writers: CSV (KLUE-RE's and alike), JSON lines, Parquet/Arrow.

Every layout is a table of records: a text column, a subject and an object entity (a dict, or a
string holding a dict literal as KLUE-RE's CSV does), a label and an optional id. Which column
and which entity key plays which role is found by name (:data:`COLUMN_NAMES`, :data:`KEY_NAMES`)
or set in the config (``data.columns``, ``data.entity_keys``); end offsets are inclusive or
exclusive, or decided on the whole file (``data.offsets: auto``) by which convention makes the
entities' words match the text. All produce :class:`RelationExample` with end-exclusive spans.
Every bad row is a :class:`DataError` naming the file, the row (the file line it ends on) and the
field; rows whose entity word does not match the text at its offsets either fail the read or are
skipped and counted (``data.on_entity_mismatch``).
"""

from __future__ import annotations

import ast
import csv
import json
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from spanfirst.data.annotation_tools import TOOL_FORMATS, read_documents, sniff
from spanfirst.data.documents import PairRules, count_layers, observed_type_pairs, relation_rows
from spanfirst.data.readers import is_table_file, iter_jsonl, read_records
from spanfirst.data.offsets import int_offset
from spanfirst.data.types import RelationExample, Span
from spanfirst.errors import DataError, DataWarning

RE_FORMATS = ("klue_re_csv", "re_jsonl", "re_parquet", *TOOL_FORMATS)
# role -> the names it is found under, first match wins (data.columns / data.entity_keys override)
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "text": ("sentence", "text"), "subject": ("subject_entity", "subject"), "object": ("object_entity", "object"),
    "label": ("label", "relation"), "id": ("id", "guid"),
}
KEY_NAMES: dict[str, tuple[str, ...]] = {
    "word": ("word", "text", "name"), "type": ("type", "entity_type"),
    "start": ("start_idx", "start", "start_offset"), "end": ("end_idx", "end", "end_offset"),
}
# without entity words to decide by: KLUE-RE's CSV has inclusive ends, the project's JSONL exclusive
_DEFAULT_ENDS = {"klue_re_csv": "inclusive", "re_jsonl": "exclusive", "re_parquet": "exclusive"}


@dataclass
class ReadResult:
    """Examples read, the rows skipped for an entity-word mismatch (skip mode), and what the
    reader decided itself (``notes``: format, columns, entity keys, offsets and why)."""

    examples: list[RelationExample]
    skipped: int = 0
    skipped_rows: list[str] = field(default_factory=list)  # the first few DataError messages
    notes: dict[str, Any] = field(default_factory=dict)


class _Mismatch(DataError):
    """An entity word that differs from the text at its offsets (skippable)."""


def detect_re_format(path: str | Path) -> str:
    """An annotation tool's export (:func:`spanfirst.data.annotation_tools.sniff`: brat folder, Label
    Studio tasks, doccano records), else ``klue_re_csv`` for .csv files, ``re_jsonl`` for
    .jsonl/.json, ``re_parquet`` for Parquet/Arrow."""
    tool = sniff(path)
    if tool is not None:
        return tool
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "klue_re_csv"
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "re_jsonl"
    if is_table_file(path):
        return "re_parquet"
    raise DataError(str(path), None, None, f"cannot tell the RE format from the suffix '{suffix}'; "
                    f"set data.format to one of {', '.join(RE_FORMATS)}")


@dataclass
class _Raw:
    """One row before the end-offset convention is known: entities as (start, end as written, type, word)."""

    line: int
    text: str
    entities: list[tuple[int, int, str, str | None]]
    label: str
    ident: str


def read_re(path: str | Path, fmt: str = "auto", *, on_mismatch: str = "fail", limit: int | None = None,
            require_label: bool = True, columns: Mapping[str, str] | None = None,
            entity_keys: Mapping[str, str] | None = None, offsets: str = "auto", pairs: PairRules | None = None,
            offset_unit: str = "auto", text_field: str | None = None) -> ReadResult:
    """Read an RE file (``fmt``: auto or one of :data:`RE_FORMATS`); ``limit`` keeps the first N
    examples. Annotation-tool exports are documents: ``pairs`` says how their entity pairs become rows."""
    path = Path(path)
    if not path.is_file() and not (path.is_dir() and fmt in ("auto", "brat")):
        raise FileNotFoundError(f"{path}: RE data file not found")
    if on_mismatch not in ("fail", "skip"):
        raise ValueError(f"on_mismatch must be 'fail' or 'skip', got {on_mismatch!r}")
    if offsets not in ("auto", "inclusive", "exclusive"):
        raise ValueError(f"offsets must be auto, inclusive or exclusive, got {offsets!r}")
    fmt = detect_re_format(path) if fmt == "auto" else fmt
    if fmt not in RE_FORMATS:
        raise DataError(str(path), None, "format", f"'{fmt}' is not an RE format ({', '.join(RE_FORMATS)})")
    if fmt in TOOL_FORMATS:
        return _document_pairs(path, fmt, pairs or PairRules(), on_mismatch, limit, offset_unit, text_field)
    unit, records = _records(path, fmt)
    raws, layout = _raw_rows(path, unit, records, dict(columns or {}), dict(entity_keys or {}), require_label)
    ends, why = _decide_ends(raws, offsets, fmt)
    result = ReadResult([], notes={"format": fmt, **layout, "offsets": ends, "offsets_decided_by": why})
    for raw in raws:
        try:
            subject, obj = (_checked_span(raw.text, s, e + (ends == "inclusive"), t, w, str(path), raw.line, name,
                                          unit) for (s, e, t, w), name in zip(raw.entities, layout["column_names"]))
            example = RelationExample(raw.text, subject, obj, raw.label, raw.ident)
        except _Mismatch as err:
            if on_mismatch == "fail":
                raise
            result.skipped += 1
            if len(result.skipped_rows) < 20:
                result.skipped_rows.append(str(err))
            continue
        result.examples.append(example)
        if limit is not None and len(result.examples) >= limit:
            result.notes["rows_in_file"] = len(raws)  # the summary counts the first ``limit``
            break
    return result


def read_re_as_configured(path: str | Path, data: Any, fmt: str | None = None, *, limit: int | None = None,
                          require_label: bool = True) -> ReadResult:
    """:func:`read_re` with a run config's ``data`` settings (format, mapping, offsets, mismatches,
    and for document-shaped files the pair rules: the negative cap and both directions of a
    symmetric label apply to the training file only, so the dev file is scored as annotated)."""
    fmt = fmt or data.format
    if fmt == "auto" and Path(path).exists():
        fmt = detect_re_format(path)
    return read_re(path, fmt, on_mismatch=data.on_entity_mismatch, limit=limit,
                   require_label=require_label, columns=data.columns, entity_keys=data.entity_keys,
                   offsets=data.offsets, offset_unit=data.offset_unit, text_field=data.fields.get("text"),
                   pairs=pair_rules(path, data) if fmt in TOOL_FORMATS else None)


def pair_rules(path: str | Path, data: Any) -> PairRules:
    """The config's pair rules for reading ``path``; ``pair_types: observed`` takes the type pairs of
    the training file's relations (never the scored file's own; the training file's from its own read)."""
    training = bool(data.train) and Path(path).resolve() == Path(data.train).resolve()
    types = None
    if data.pair_types == "observed" and not training and (not data.train or not Path(data.train).exists()):
        warnings.warn(f"{path}: data.pair_types is 'observed' but the training file ({data.train}) is not here to "
                      "read the relations' type pairs from: every entity pair is a row", DataWarning, stacklevel=2)
    elif data.pair_types == "observed" and not training:
        read = read_documents(data.train, sniff(data.train), offset_unit=data.offset_unit,
                              on_mismatch=data.on_entity_mismatch, text_field=data.fields.get("text"))
        types = observed_type_pairs(read, data.negative_label)
    return PairRules(negative_label=data.negative_label, window=data.pair_window, window_unit=data.pair_window_unit,
                     type_pairs=types, max_negatives=data.max_negatives_per_text if training else None,
                     seed=data.negative_seed, symmetric=frozenset(data.symmetric_labels), both_directions=training,
                     types_from_read=training and data.pair_types == "observed")


def _document_pairs(path: Path, fmt: str, rules: PairRules, on_mismatch: str, limit: int | None,
                    offset_unit: str, text_field: str | None) -> ReadResult:
    """The RE rows of an annotation tool's documents; the notes count what making them did."""
    read = read_documents(path, fmt, offset_unit=offset_unit, on_mismatch=on_mismatch, text_field=text_field)
    if rules.types_from_read:
        rules = replace(rules, type_pairs=observed_type_pairs(read, rules.negative_label), types_from_read=False)
    rows, made = relation_rows(read, rules)
    notes = {**read.notes, **count_layers(read), **made}
    if rules.window is not None:
        notes["pair_window"] = f"{rules.window} {rules.window_unit}"
    if rules.type_pairs is not None:
        notes["pair_types"] = f"observed ({len(rules.type_pairs)} type pairs)"
    if limit is not None and len(rows) > limit:
        notes["rows_in_file"] = len(rows)
        rows = rows[:limit]
    return ReadResult(rows, notes=notes)  # entities skipped for a mismatch are counted in the notes


def _records(path: Path, fmt: str) -> tuple[str, Iterator[tuple[int, dict[str, Any]]]]:
    """(how rows are named in errors, (row number, record) for every row)."""
    if fmt == "klue_re_csv":
        return "line", _csv_records(path)
    if fmt == "re_parquet":
        src = read_records(path)
        if src.unit != "row":
            raise DataError(str(path), None, "format", "re_parquet needs a Parquet or Arrow file")
        return "row", iter(src.rows)
    return "line", iter_jsonl(path)


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Header -> cell dicts; the line a row ends on; an unnamed (index) column is kept as ''."""
    with path.open(encoding="utf-8-sig", newline="") as f:  # utf-8-sig drops the BOM
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DataError(str(path), 1, None, "empty file (a header row is required)")
        header = [h.strip() for h in header]
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(str(path), reader.line_num, None, f"{len(row)} cells, the header has {len(header)}")
            yield reader.line_num, dict(zip(header, row))


def _resolve(role: str, names: Iterable[str], given: Mapping[str, str],
             candidates: dict[str, tuple[str, ...]]) -> str | None:
    """The name playing ``role``: the configured one (which must exist), else the first candidate present."""
    names = list(names)
    if role in given:
        return given[role] if given[role] in names else ""
    return next((c for c in candidates[role] if c in names), None)


def _raw_rows(path: Path, unit: str, records: Iterator[tuple[int, dict[str, Any]]], columns: dict[str, str],
              keys: dict[str, str], require_label: bool) -> tuple[list[_Raw], dict[str, Any]]:
    raws: list[_Raw] = []
    col: dict[str, str | None] = {}
    for n, record in records:
        if not col:  # the first row fixes the columns (a CSV header: line 1)
            where = 1 if unit == "line" and path.suffix.lower() == ".csv" else n
            needed = ("text", "subject", "object", "label") if require_label else ("text", "subject", "object")
            for role in COLUMN_NAMES:
                col[role] = _resolve(role, record, columns, COLUMN_NAMES)
                if role in needed and not col[role]:
                    wanted = f"'{columns[role]}' (data.columns.{role})" if role in columns else \
                        " or ".join(repr(c) for c in COLUMN_NAMES[role])
                    raise DataError(str(path), where, role, f"no {role} column: {wanted} is not among the columns "
                                    f"{list(record)}; name it with data.columns.{role}", unit=unit)
        text = record.get(col["text"])
        if not isinstance(text, str):
            raise DataError(str(path), n, col["text"], f"expected the text as a string, got {type(text).__name__}",
                            unit=unit)
        entities = [_entity(record.get(col[role]), keys, str(path), n, col[role], unit) for role in ("subject", "object")]
        label = record.get(col["label"], "") if col["label"] else ""
        if require_label and (not isinstance(label, str) or not label.strip()):
            raise DataError(str(path), n, col["label"], "empty label" if label == "" else
                            f"expected a non-empty string, got {label!r}", unit=unit)
        ident = record.get(col["id"]) if col["id"] else None
        raws.append(_Raw(n, text, entities, str(label or "").strip(),
                         str(ident).strip() if ident not in (None, "") else str(len(raws) + 1)))
    layout = {"columns": {r: c for r, c in col.items() if c}, "column_names": (col.get("subject"), col.get("object"))}
    return raws, layout


def _entity(value: Any, keys: dict[str, str], path: str, line: int, name: str, unit: str) -> tuple[int, int, str, str | None]:
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value.strip())  # a Python dict literal (KLUE-RE); JSON objects parse too
        except (ValueError, SyntaxError, MemoryError, RecursionError) as err:
            try:
                value = json.loads(value)
            except ValueError:
                raise DataError(path, line, name, f"not a dict literal ({type(err).__name__}): {value[:80]!r}",
                                unit=unit) from None
    if not isinstance(value, dict):
        raise DataError(path, line, name, f"expected a dict with the entity's offsets and type, got "
                        f"{type(value).__name__}", unit=unit)
    found = {role: _resolve(role, value, keys, KEY_NAMES) for role in KEY_NAMES}
    missing = [role for role in ("start", "end", "type") if not found[role]]
    if missing:
        wanted = ", ".join(f"{r} ({keys[r]!r})" if r in keys else f"{r} ({' or '.join(map(repr, KEY_NAMES[r]))})"
                           for r in missing)
        raise DataError(path, line, name, f"missing key(s) {wanted}; its keys are {list(value)}; name them with "
                        "data.entity_keys", unit=unit)
    start = int_offset(value[found["start"]], path, line, f"{name}.{found['start']}", unit)
    end = int_offset(value[found["end"]], path, line, f"{name}.{found['end']}", unit)
    word = value.get(found["word"]) if found["word"] else None
    return start, end, value[found["type"]], word if isinstance(word, str) else None


def _decide_ends(raws: list[_Raw], offsets: str, fmt: str) -> tuple[str, str]:
    """(inclusive | exclusive, why): as configured, or the convention under which more entity words
    match the text over the whole file (ties and files without words: the format's convention)."""
    if offsets != "auto":
        return offsets, "data.offsets"
    votes = {"exclusive": 0, "inclusive": 0}
    for raw in raws:
        for s, e, _, word in raw.entities:
            if word is not None:
                votes["exclusive"] += raw.text[s:e] == word
                votes["inclusive"] += raw.text[s:e + 1] == word
    if votes["exclusive"] == votes["inclusive"]:
        return _DEFAULT_ENDS[fmt], f"the {fmt} convention (entity words match either way: {votes['exclusive']})"
    ends = max(votes, key=votes.get)
    words = sum(w is not None for raw in raws for *_, w in raw.entities)
    return ends, f"entity words: {votes[ends]} of {words} match with {ends} ends, {votes[min(votes, key=votes.get)]} otherwise"


def parse_re_record(record: Any, path: str = "<record>", line: int | None = None,
                    require_label: bool = True) -> RelationExample:
    """One ``{"id"?, "text", "subject": {start, end, type, word?}, "object": {...}, "label"}`` record."""
    if not isinstance(record, dict):
        raise DataError(path, line, None, f"expected a JSON object, got {type(record).__name__}")
    text = record.get("text")
    if not isinstance(text, str):
        raise DataError(path, line, "text", "missing or not a string")
    spans = []
    for name in ("subject", "object"):
        ent = record.get(name)
        if not isinstance(ent, dict):
            raise DataError(path, line, name, "missing or not an object with start, end, type")
        missing = [k for k in ("start", "end", "type") if k not in ent]
        if missing:
            raise DataError(path, line, name, f"missing key(s) {missing}")
        start, end = int_offset(ent["start"], path, line, f"{name}.start"), int_offset(ent["end"], path, line, f"{name}.end")
        spans.append(_checked_span(text, start, end, ent["type"], ent.get("word"), path, line, name))
    label = record.get("label", "")
    if require_label and (not isinstance(label, str) or not label):
        raise DataError(path, line, "label", "missing or not a non-empty string")
    return RelationExample(text, spans[0], spans[1], str(label or ""), str(record.get("id", line or "")))


def write_re_jsonl(examples: Iterable[RelationExample], path: str | Path) -> int:
    """Write examples as RE JSONL (end exclusive; ``word`` included so readers can verify offsets)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            record = {"id": ex.id, "text": ex.text}
            for name, span in (("subject", ex.subject), ("object", ex.object)):
                record[name] = {"start": span.start, "end": span.end, "type": span.type,
                                "word": ex.text[span.start : span.end]}
            record["label"] = ex.label
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


# -- checks --------------------------------------------------------------------------------------


def _checked_span(text: str, start: int, end: int, etype: Any, word: Any, path: str, line: int | None,
                  name: str, unit: str = "line") -> Span:
    if not isinstance(etype, str) or not etype:
        raise DataError(path, line, f"{name}.type", f"expected a non-empty string, got {etype!r}", unit=unit)
    if not 0 <= start < end <= len(text):
        raise DataError(path, line, name, f"offsets [{start}, {end}) lie outside the sentence (length {len(text)})",
                        unit=unit)
    if word is not None and text[start:end] != word:
        raise _Mismatch(path, line, f"{name}.word",
                        f"entity word {word!r} does not match the text at its offsets: {text[start:end]!r}", unit=unit)
    return Span(start, end, etype)


# -- labels --------------------------------------------------------------------------------------


def read_relation_list(path: str | Path) -> list[str]:
    """Labels of a ``{"relations": [...]}`` file, in the file's order."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: relation list not found") from None
    except json.JSONDecodeError as err:
        raise DataError(str(path), err.lineno, None, f"not valid JSON: {err.msg}") from None
    rels = data.get("relations") if isinstance(data, dict) else None
    if not isinstance(rels, list) or not rels or not all(isinstance(r, str) and r for r in rels):
        raise DataError(str(path), None, "relations", "expected {\"relations\": [non-empty strings]}")
    if len(set(rels)) != len(rels):
        dup = sorted({r for r in rels if rels.count(r) > 1})
        raise DataError(str(path), None, "relations", f"duplicate labels {dup}")
    return list(rels)


def relation_labels(examples: Iterable[RelationExample], negative: str, relation_list: str | Path | None = None) -> list[str]:
    """The fixed label order: the relation list's, or the data's sorted with ``negative`` first."""
    if relation_list:
        labels = read_relation_list(relation_list)
        if negative not in labels:
            raise DataError(str(relation_list), None, "relations", f"the negative label '{negative}' is not listed")
        return labels
    seen = {ex.label for ex in examples} - {negative}
    return [negative, *sorted(seen)]


def check_labels(examples: Iterable[RelationExample], labels: list[str], source: str) -> None:
    """Fail naming the labels of ``source`` that the label set lacks."""
    unknown = sorted({ex.label for ex in examples} - set(labels))
    if unknown:
        raise DataError(source, None, "label", f"labels {unknown} are not in the label set ({len(labels)} labels: "
                        f"{labels[:5]}{' ...' if len(labels) > 5 else ''})")
