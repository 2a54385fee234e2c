"""Relation-extraction readers and writers: the KLUE-RE CSV and the project's RE JSONL.

Both produce :class:`RelationExample` with end-exclusive character spans. Every bad row is a
:class:`DataError` naming the file, the row (the file line it ends on) and the field; rows whose
entity ``word`` does not match the sentence at its offsets either fail the read or are skipped
and counted (``data.on_entity_mismatch``).
"""

from __future__ import annotations

import ast
import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spanfirst.data.readers import iter_jsonl
from spanfirst.data.types import RelationExample, Span
from spanfirst.errors import DataError

CSV_COLUMNS = ("sentence", "subject_entity", "object_entity", "label")
_ENTITY_KEYS = ("word", "start_idx", "end_idx", "type")


@dataclass
class ReadResult:
    """Examples read, plus the rows skipped for an entity-word mismatch (skip mode)."""

    examples: list[RelationExample]
    skipped: int = 0
    skipped_rows: list[str] = field(default_factory=list)  # the first few DataError messages


class _Mismatch(DataError):
    """An entity word that differs from the text at its offsets (skippable)."""


def detect_re_format(path: str | Path) -> str:
    """``klue_re_csv`` for .csv files, ``re_jsonl`` for .jsonl/.json."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "klue_re_csv"
    if suffix in (".jsonl", ".json"):
        return "re_jsonl"
    raise DataError(str(path), None, None, f"cannot tell the RE format from the suffix '{suffix}'; "
                    "set data.format to klue_re_csv or re_jsonl")


def read_re(path: str | Path, fmt: str = "auto", *, on_mismatch: str = "fail", limit: int | None = None,
            require_label: bool = True) -> ReadResult:
    """Read an RE file (``fmt``: auto | klue_re_csv | re_jsonl); ``limit`` keeps the first N examples."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: RE data file not found")
    if on_mismatch not in ("fail", "skip"):
        raise ValueError(f"on_mismatch must be 'fail' or 'skip', got {on_mismatch!r}")
    fmt = detect_re_format(path) if fmt == "auto" else fmt
    if fmt == "klue_re_csv":
        rows = _csv_rows(path, require_label)
    elif fmt == "re_jsonl":
        rows = _jsonl_rows(path, require_label)
    else:
        raise DataError(str(path), None, "format", f"'{fmt}' is not an RE format (klue_re_csv, re_jsonl)")
    result = ReadResult([])
    for item in rows:  # a generator raising would end it, so mismatches come as values
        if isinstance(item, _Mismatch):
            if on_mismatch == "fail":
                raise item
            result.skipped += 1
            if len(result.skipped_rows) < 20:
                result.skipped_rows.append(str(item))
            continue
        result.examples.append(item)
        if limit is not None and len(result.examples) >= limit:
            break
    return result


# -- KLUE-RE CSV ---------------------------------------------------------------------------------


def _csv_rows(path: Path, require_label: bool) -> Iterator[RelationExample | _Mismatch]:
    with path.open(encoding="utf-8-sig", newline="") as f:  # utf-8-sig drops the BOM
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DataError(str(path), 1, None, "empty file (a header row is required)")
        header = [h.strip() for h in header]
        needed = CSV_COLUMNS if require_label else CSV_COLUMNS[:3]
        missing = [c for c in needed if c not in header]
        if missing:
            raise DataError(str(path), 1, missing[0], f"missing column(s) {missing}; the header is {header}")
        col = {name: i for i, name in enumerate(header)}
        for n, row in enumerate(reader, 1):
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(str(path), line, None, f"{len(row)} cells, the header has {len(header)}")
            text = row[col["sentence"]]
            try:
                subject = _klue_entity(row[col["subject_entity"]], text, str(path), line, "subject_entity")
                obj = _klue_entity(row[col["object_entity"]], text, str(path), line, "object_entity")
            except _Mismatch as err:
                yield err
                continue
            label = row[col["label"]].strip() if "label" in col else ""
            if require_label and not label:
                raise DataError(str(path), line, "label", "empty label")
            ex_id = row[col["id"]].strip() if "id" in col else str(n)
            yield RelationExample(text, subject, obj, label, ex_id)


def _klue_entity(raw: str, text: str, path: str, line: int, name: str) -> Span:
    """``"{'word': ..., 'start_idx': s, 'end_idx': e (inclusive), 'type': T}"`` -> Span (end exclusive)."""
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError) as err:
        raise DataError(path, line, name, f"not a Python dict literal ({type(err).__name__}): {raw[:80]!r}") from None
    if not isinstance(value, dict):
        raise DataError(path, line, name, f"expected a dict, got {type(value).__name__}")
    missing = [k for k in _ENTITY_KEYS if k not in value]
    if missing:
        raise DataError(path, line, name, f"missing key(s) {missing}")
    start, end = _int(value["start_idx"], path, line, f"{name}.start_idx"), _int(value["end_idx"], path, line, f"{name}.end_idx")
    return _checked_span(text, start, end + 1, value["type"], value["word"], path, line, name)


# -- RE JSONL ------------------------------------------------------------------------------------


def _jsonl_rows(path: Path, require_label: bool) -> Iterator[RelationExample | _Mismatch]:
    for line, record in iter_jsonl(path):
        try:
            yield parse_re_record(record, str(path), line, require_label)
        except _Mismatch as err:
            yield err


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
        start, end = _int(ent["start"], path, line, f"{name}.start"), _int(ent["end"], path, line, f"{name}.end")
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


def _int(value: Any, path: str, line: int | None, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise DataError(path, line, name, f"expected an integer offset, got {value!r}")
    return value


def _checked_span(text: str, start: int, end: int, etype: Any, word: Any, path: str, line: int | None,
                  name: str) -> Span:
    if not isinstance(etype, str) or not etype:
        raise DataError(path, line, f"{name}.type", f"expected a non-empty string, got {etype!r}")
    if not 0 <= start < end <= len(text):
        raise DataError(path, line, name, f"offsets [{start}, {end}) lie outside the sentence (length {len(text)})")
    if word is not None and text[start:end] != word:
        raise _Mismatch(path, line, f"{name}.word",
                        f"entity word {word!r} does not match the text at its offsets: {text[start:end]!r}")
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
