"""NER readers: every on-disk format becomes ``list[Example]`` (text + character spans) at load time.

Formats: ``klue_bio`` (character-level ``CHAR<TAB>TAG`` with ``## id<TAB>sentence`` headers),
``surface_jsonl`` (``{"title", "label": {type: [surface forms]}}``), ``span_jsonl`` (the
project's own ``{"text", "entities": [{start, end, type}]}``, end exclusive), ``offsets_jsonl``,
``token_jsonl``, ``conll`` (whitespace-separated token/tag columns, IOB1, IOB2/BIO, BIOES or BILOU
tags) and the annotation tools' exports (doccano, Label Studio, brat:
:mod:`spanfirst.data.annotation_tools`). The keys of JSON-lines / Parquet records are found by
name (:data:`FIELD_NAMES`) or mapped with ``data.fields``. Bad input is a :class:`DataError` naming
the file, the 1-based line and the field.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spanfirst.data.annotation_tools import TOOL_FORMATS, is_doccano, read_documents, sniff
from spanfirst.data.documents import count_layers, ner_examples
from spanfirst.data.types import Example, Span
from spanfirst.errors import DataError, DataWarning

NER_FORMATS = ("klue_bio", "surface_jsonl", "span_jsonl", "offsets_jsonl", "token_jsonl", "conll", *TOOL_FORMATS)
# role -> the keys it is found under in JSON-lines / Parquet records, first match wins (data.fields overrides)
FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "text": ("text", "title", "sentence"), "tokens": ("tokens", "words"),
    "entities": ("entities", "entity_mentions", "spans"), "tags": ("ner_tags", "tags"), "id": ("id",),
    "start": ("start", "start_offset"), "end": ("end", "end_offset"), "type": ("type", "entity_type", "label"),
}
OFFSETS = ("auto", "exclusive", "inclusive")
_TABLE_SUFFIXES = (".parquet", ".pq", ".arrow", ".feather", ".ipc")

TAG_SCHEMES = ("auto", "iob1", "iob2", "bioes")
_PREFIXES = {"B": "B", "I": "I", "E": "E", "S": "S", "L": "E", "U": "S"}  # BILOU's L/U are BIOES's E/S
_JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")

Tag = tuple[str, str | None]  # ("O", None) or (prefix in B/I/E/S, type)


def label_set(examples: Iterable[Example]) -> list[str]:
    """The sorted unique entity types of ``examples``."""
    return sorted({s.type for e in examples for s in e.entities})


# -- tags ----------------------------------------------------------------------------------------


def parse_tag(tag: str) -> Tag:
    """``"O"`` -> ("O", None); ``"B-PER"`` -> ("B", "PER"); ``L-``/``U-`` map to ``E``/``S``.

    Raises ValueError for anything else, including an empty type (``"B-"``).
    """
    if tag == "O":
        return ("O", None)
    if len(tag) > 2 and tag[1] == "-" and tag[0] in _PREFIXES:
        return (_PREFIXES[tag[0]], tag[2:])
    if len(tag) == 2 and tag[1] == "-" and tag[0] in _PREFIXES:
        raise ValueError(f"tag '{tag}' has an empty entity type")
    raise ValueError(f"unknown tag '{tag}' (expected O, B-X, I-X, E-X, S-X, L-X or U-X)")


def _check_scheme(scheme: str) -> None:
    if scheme not in TAG_SCHEMES:
        raise ValueError(f"unknown tag scheme '{scheme}'; valid schemes: {', '.join(TAG_SCHEMES)}")


def tags_to_spans(tags: Sequence[Tag | str]) -> list[tuple[int, int, str]]:
    """Decode a tag sequence into ``(start, end_exclusive, type)`` unit spans.

    One decoder serves every scheme because their valid sequences never disagree: ``B`` always
    starts an entity; ``I`` continues an open entity of its type and otherwise starts one (IOB1,
    and lenient IOB2/BIOES); ``E`` ends an open entity of its type (alone it is a single unit);
    ``S`` is a single unit; ``O`` closes. An entity left open at a type change or at the end is
    closed there.
    """
    spans: list[tuple[int, int, str]] = []
    start, open_type = -1, None
    for i, tag in enumerate(tags):
        prefix, typ = parse_tag(tag) if isinstance(tag, str) else tag
        continues = open_type is not None and typ == open_type and prefix in ("I", "E")
        if open_type is not None and not continues:
            spans.append((start, i, open_type))
            open_type = None
        if prefix == "O":
            continue
        if prefix == "S" or (prefix == "E" and not continues):
            spans.append((i, i + 1, typ))  # type: ignore[arg-type]
        elif prefix == "E":
            spans.append((start, i + 1, typ))  # type: ignore[arg-type]
            open_type = None
        elif not continues:  # B, or an I that starts an entity
            start, open_type = i, typ
    if open_type is not None:
        spans.append((start, len(tags), open_type))
    return spans


def _read_tag(raw: str, scheme: str, path: Path, line: int, field: str) -> Tag:
    try:
        tag = parse_tag(raw)
    except ValueError as err:
        raise DataError(str(path), line, field, str(err)) from None
    if scheme in ("iob1", "iob2") and tag[0] in ("E", "S"):
        raise DataError(str(path), line, field, f"tag '{raw}' does not belong to the {scheme} scheme "
                        "(E-/S-/L-/U- tags need conll_scheme bioes or auto)")
    return tag


def _to_example(pieces: list[str], tags: list[Tag], sep: str, ident: str = "") -> Example:
    """Join text pieces with ``sep`` and turn unit spans into character spans."""
    starts, ends, pos = [], [], 0
    for piece in pieces:
        starts.append(pos)
        pos += len(piece)
        ends.append(pos)
        pos += len(sep)
    spans = [Span(starts[s], ends[e - 1], t) for s, e, t in tags_to_spans(tags)]
    return Example(sep.join(pieces), spans, ident)


# -- files ---------------------------------------------------------------------------------------


def _lines(path: str | Path) -> list[str]:
    """The file's lines without line ends; only ``\\n`` splits (a character may be any other
    separator), a trailing ``\\r`` is dropped, a UTF-8 BOM is ignored."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: NER data file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(str(path), raw[: err.start].count(b"\n") + 1, None, "not UTF-8 text") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _nonempty(path: Path, examples: list[Example]) -> list[Example]:
    if not examples:
        raise DataError(str(path), None, None, "no examples found (empty file?)")
    return examples


# -- KLUE character-level BIO --------------------------------------------------------------------


def read_klue_bio(path: str | Path, scheme: str = "auto") -> list[Example]:
    """KLUE-NER TSV: ``CHAR<TAB>TAG`` lines, a blank line between sentences.

    The last ``##`` line before a sentence is its header, ``## <id><TAB><annotated sentence>``;
    earlier ``##`` lines are comments. The character may itself be a space, so lines are split
    on their last tab and never stripped. Text is the characters concatenated.
    """
    _check_scheme(scheme)
    path = Path(path)
    examples: list[Example] = []
    chars: list[str] = []
    tags: list[Tag] = []
    header = ""

    def flush() -> None:
        nonlocal header
        if chars:
            ident = header[2:].split("\t", 1)[0].strip() if "\t" in header else ""
            examples.append(_to_example(chars, tags, "", ident))
            chars.clear()
            tags.clear()
            header = ""

    for n, line in enumerate(_lines(path), 1):
        if line.startswith("##"):
            flush()
            header = line
        elif "\t" not in line and not line.strip():
            flush()
        elif "\t" not in line:
            raise DataError(str(path), n, "tag", f"expected CHAR<TAB>TAG, got {line!r}")
        else:
            char, raw_tag = line.rsplit("\t", 1)
            if not char:
                raise DataError(str(path), n, "char", "empty character")
            chars.append(char)
            tags.append(_read_tag(raw_tag.strip(), scheme, path, n, "tag"))
    flush()
    return _nonempty(path, examples)


# -- JSON lines ----------------------------------------------------------------------------------


def iter_jsonl(path: str | Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSON-lines file; a bad line is a DataError."""
    path = Path(path)
    for n, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(str(path), n, None, f"not valid JSON: {err.msg} (column {err.colno})") from None
        if not isinstance(record, dict):
            raise DataError(str(path), n, None, f"expected a JSON object, got {type(record).__name__}")
        yield n, record


def is_table_file(path: str | Path) -> bool:
    """A Parquet or Arrow (IPC/Feather) file, by extension or by its magic bytes."""
    path = Path(path)
    if path.suffix.lower() in _TABLE_SUFFIXES:
        return True
    with path.open("rb") as f:
        head = f.read(6)
    return head[:4] == b"PAR1" or head == b"ARROW1"


def _read_table(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.feather
    import pyarrow.parquet

    try:
        with path.open("rb") as f:
            parquet = f.read(4) == b"PAR1"
        return pyarrow.parquet.read_table(path) if parquet else pyarrow.feather.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(str(path), None, None, f"not a readable Parquet/Arrow file: {err}") from None


def _class_names(table: Any) -> dict[str, list[str]]:
    """Column -> label names of integer tag columns, from the Hugging Face datasets metadata an
    exported Parquet/Arrow file carries (``ClassLabel`` features, also inside a sequence)."""
    raw = (table.schema.metadata or {}).get(b"huggingface")
    if not raw:
        return {}
    try:
        features = json.loads(raw).get("info", {}).get("features", {})
    except (ValueError, AttributeError):
        return {}
    out = {}
    for col, feat in features.items() if isinstance(features, dict) else ():
        inner = feat.get("feature", feat) if isinstance(feat, dict) else {}
        if isinstance(inner, dict) and isinstance(inner.get("names"), list):
            out[col] = [str(x) for x in inner["names"]]
    return out


@dataclass
class Records:
    """The rows of a JSON-lines or Parquet/Arrow file as dicts, and how errors name a row."""

    path: Path
    rows: list[tuple[int, dict[str, Any]]]
    unit: str = "line"
    class_names: dict[str, list[str]] = field(default_factory=dict)

    def error(self, n: int | None, where: str | None, message: str) -> DataError:
        return DataError(str(self.path), n, where, message, unit=self.unit)


def read_records(path: str | Path, limit: int | None = None) -> Records:
    """Every row (or the first ``limit`` of a table: format detection needs one)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: NER data file not found")
    if not is_table_file(path):
        return Records(path, list(iter_jsonl(path)))
    table = _read_table(path)
    rows = (table if limit is None else table.slice(0, limit)).to_pylist()
    return Records(path, list(enumerate(rows, 1)), "row", _class_names(table))


@dataclass(frozen=True)
class Fields:
    """Which key of a record plays which role: ``data.fields`` where given (the key must be there),
    else the first of :data:`FIELD_NAMES` present."""

    given: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.given) - set(FIELD_NAMES))
        if unknown:
            raise ValueError(f"data.fields: unknown role(s) {unknown}; it maps {', '.join(FIELD_NAMES)} to key names")

    def find(self, role: str, record: dict[str, Any]) -> str | None:
        """The key playing ``role`` in ``record``, or None."""
        if role in self.given:
            return self.given[role] if self.given[role] in record else None
        return next((k for k in FIELD_NAMES[role] if k in record), None)

    def key(self, role: str, record: dict[str, Any], src: Records, n: int, prefix: str = "") -> str:
        """The key playing ``role``; missing is an error naming the keys the record has."""
        found = self.find(role, record)
        if found is None:
            wanted = (f"'{self.given[role]}' (data.fields.{role})" if role in self.given
                      else " or ".join(repr(k) for k in FIELD_NAMES[role]))
            raise src.error(n, prefix + (self.given.get(role) or FIELD_NAMES[role][0]),
                            f"missing: no {role} key {wanted} among {list(record)[:12]}; name it with data.fields.{role}")
        return found


def _field(record: dict[str, Any], key: str, kind: type | tuple[type, ...], src: Records, n: int,
           what: str, prefix: str = "") -> Any:
    if key not in record:
        raise src.error(n, prefix + key, f"missing (expected {what})")
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise src.error(n, prefix + key, f"expected {what}, got {type(value).__name__}")
    return value


def _ident(record: dict[str, Any], src: Records, n: int, fields: Fields = Fields()) -> str:
    value = record.get(fields.find("id", record) or "id", "")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise src.error(n, "id", f"expected a string or an integer, got {type(value).__name__}")
    return str(value)


def _occurrences(text: str, form: str) -> list[tuple[int, int]]:
    found, at = [], text.find(form)
    while at >= 0:
        found.append((at, at + len(form)))
        at = text.find(form, at + len(form))
    return found


def _text_key(record: dict[str, Any], fields: Fields) -> str:
    if "text" in fields.given:
        return fields.given["text"]
    return "title" if "title" in record or "text" not in record else "text"


def read_surface_jsonl(path: str | Path, fields: Fields = Fields()) -> list[Example]:
    """``{"title" (or "text"): ..., "label": {type: [surface form, ...]}}`` per line.

    Every non-overlapping occurrence of each listed form is labelled. Longer forms claim their
    occurrences first, so a form found inside a longer listed entity is not labelled there
    (``서울`` inside ``서울대학교``) unless it occurs nowhere else. A listed form that does not
    occur in the text is an error naming the line and ``label.<type>``.
    """
    src = read_records(path)
    examples = []
    for n, record in src.rows:
        text = _field(record, _text_key(record, fields), str, src, n, "the sentence as a string ('title' or 'text')")
        label = _field(record, fields.given.get("entities", "label"), dict, src, n,
                       "an object mapping entity types to surface forms")
        wanted: list[tuple[str, str]] = []  # (form, type)
        for typ, forms in label.items():
            where = f"label.{typ}"
            if isinstance(forms, str):
                forms = [forms]
            if isinstance(forms, dict):
                raise src.error(n, where, "a type maps to mentions with offsets: that is the offsets_jsonl "
                                "layout (data.format: offsets_jsonl)")
            if not typ or not isinstance(forms, list):
                raise src.error(n, where, "expected a non-empty type mapped to a list of strings")
            for form in forms:
                if not isinstance(form, str) or not form:
                    raise src.error(n, where, f"expected non-empty strings, got {form!r}")
                if form not in text:
                    raise src.error(n, where, f"surface form '{form}' does not occur in the text")
                if (form, typ) not in wanted:
                    wanted.append((form, typ))
        taken: list[tuple[int, int]] = []
        spans = []
        for form, typ in sorted(wanted, key=lambda ft: -len(ft[0])):  # stable: ties keep file order
            found = _occurrences(text, form)
            free = [(s, e) for s, e in found if not any(s < te and ts < e for ts, te in taken)]
            for s, e in free or found:
                spans.append(Span(s, e, typ))
            taken.extend(free)
        examples.append(Example(text, spans, _ident(record, src, n, fields)))
    return _nonempty(src.path, examples)


def _entity_list(record: dict[str, Any], src: Records, n: int,
                 fields: Fields = Fields()) -> list[tuple[int, int, str, str]]:
    """``entities: [{start, end, type}]`` (keys as :class:`Fields` finds them) as (start, end as
    written, type, where)."""
    out = []
    key = fields.key("entities", record, src, n)
    for k, ent in enumerate(_field(record, key, list, src, n, "a list of {start, end, type}")):
        where = f"{key}[{k}]"
        if not isinstance(ent, dict):
            raise src.error(n, where, f"expected an object, got {type(ent).__name__}")
        start = _field(ent, fields.key("start", ent, src, n, where + "."), int, src, n, "an integer", where + ".")
        end = _field(ent, fields.key("end", ent, src, n, where + "."), int, src, n, "an integer", where + ".")
        type_key = fields.key("type", ent, src, n, where + ".")
        typ = _field(ent, type_key, str, src, n, "a string", where + ".")
        if not typ:
            raise src.error(n, f"{where}.{type_key}", "empty entity type")
        out.append((start, end, typ, where))
    return out


def _check_offsets(src: Records, n: int, where: str, start: int, end: int, length: int, unit: str) -> None:
    if not 0 <= start < end <= length:
        raise src.error(n, where, f"offsets [{start}, {end}) must satisfy 0 <= start < end <= {length} "
                        f"(the number of {unit})")


def read_span_jsonl(path: str | Path, fields: Fields = Fields()) -> list[Example]:
    """``{"text": ..., "entities": [{"start", "end", "type"}], "id"?: ...}``, character offsets,
    end exclusive (other key names: :class:`Fields`)."""
    src = read_records(path)
    examples = []
    for n, record in src.rows:
        text = _field(record, fields.key("text", record, src, n), str, src, n, "a string")
        spans = []
        for start, end, typ, where in _entity_list(record, src, n, fields):
            _check_offsets(src, n, where, start, end, len(text), "characters in the text")
            spans.append(Span(start, end, typ))
        examples.append(Example(text, spans, _ident(record, src, n, fields)))
    return _nonempty(src.path, examples)


def _decide_ends(votes: dict[str, int], total: int, offsets: str, src: Records, what: str) -> str:
    """``offsets`` as given, or (``auto``) the convention under which every mention matches."""
    if offsets != "auto":
        return offsets
    fits = [conv for conv in ("exclusive", "inclusive") if votes[conv] == total]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        best = max(votes, key=votes.get)
        raise src.error(None, None, f"cannot tell whether {what} end offsets are inclusive or exclusive: "
                        f"{votes['exclusive']} of {total} mentions match the text with exclusive ends, "
                        f"{votes['inclusive']} with inclusive ends; set data.offsets (the mismatches name "
                        f"their rows when it is set, e.g. data.offsets: {best})")
    return "exclusive"  # no mention tells them apart (an empty file): the project's own convention


def read_offsets_jsonl(path: str | Path, offsets: str = "auto", notes: dict[str, Any] | None = None,
                       fields: Fields = Fields()) -> list[Example]:
    """``{"text": ..., "label": {type: {mention: [[start, end], ...]}}}`` (CLUENER's layout),
    character offsets; ``offsets``: ``inclusive`` / ``exclusive`` end, or ``auto``: the convention
    under which every mention of the whole file equals the text between its offsets (the choice goes
    into ``notes["offsets"]``). A mention that does not match is an error naming its row and field."""
    src = read_records(path)
    parsed = []
    votes, total = {"exclusive": 0, "inclusive": 0}, 0
    for n, record in src.rows:
        text = _field(record, _text_key(record, fields), str, src, n, "the sentence as a string ('text' or 'title')")
        label = _field(record, fields.given.get("entities", "label"), dict, src, n,
                       "an object: type -> {mention: [[start, end], ...]}")
        mentions = []
        for typ, by_form in label.items():
            if not typ or not isinstance(by_form, dict):
                raise src.error(n, f"label.{typ}", "expected a non-empty type mapped to {mention: [[start, end], ...]}")
            for form, pairs in by_form.items():
                where = f"label.{typ}.{form}"
                if not isinstance(pairs, list) or not all(
                        isinstance(p, list) and len(p) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                                     for x in p) for p in pairs):
                    raise src.error(n, where, f"expected a list of [start, end] integer pairs, got {pairs!r}")
                for a, b in pairs:
                    mentions.append((a, b, typ, form, where))
                    total += 1
                    votes["exclusive"] += text[a:b] == form and a < b
                    votes["inclusive"] += text[a:b + 1] == form and a <= b
        parsed.append((n, record, text, mentions))
    ends = _decide_ends(votes, total, offsets, src, "label")
    if notes is not None:
        notes["offsets"] = ends
    examples = []
    for n, record, text, mentions in parsed:
        spans = []
        for a, b, typ, form, where in mentions:
            end = b + 1 if ends == "inclusive" else b
            if not 0 <= a < end <= len(text) or text[a:end] != form:
                raise src.error(n, where, f"[{a}, {b}] with {ends} end is {text[a:end]!r} in the text, not {form!r}")
            spans.append(Span(a, end, typ))
        examples.append(Example(text, spans, _ident(record, src, n, fields)))
    return _nonempty(src.path, examples)


def read_token_jsonl(path: str | Path, offsets: str = "auto", notes: dict[str, Any] | None = None,
                     fields: Fields = Fields()) -> list[Example]:
    """Token-level records (nested-NER corpora, Hugging Face exports): ``tokens`` plus either
    ``entities: [{start, end, type}]`` in token offsets (``offsets``: ``exclusive`` / ``inclusive``
    end; ``auto``: inclusive only if some entity has start == end) or a tag column (``ner_tags`` or
    ``tags``: IOB/BIOES strings, or integers named by the file's ``ClassLabel`` metadata). The text
    is the tokens joined by single spaces."""
    src = read_records(path)
    parsed = []
    single = False
    for n, record in src.rows:
        tokens_key = fields.key("tokens", record, src, n)
        tokens = _field(record, tokens_key, list, src, n, "a list of token strings")
        if not all(isinstance(t, str) and t and not t.isspace() for t in tokens):
            raise src.error(n, tokens_key, "expected non-empty token strings without whitespace only")
        if fields.find("entities", record) is not None or fields.find("tags", record) is None:
            ents = _entity_list(record, src, n, fields)
            single |= any(s == e for s, e, _, _ in ents)
            parsed.append((n, record, tokens, ents, None))
        else:
            parsed.append((n, record, tokens, None, _tags(record, src, n, len(tokens), fields)))
    ends = "inclusive" if offsets == "inclusive" or (offsets == "auto" and single) else "exclusive"
    if notes is not None:
        notes["offsets"] = ends
    examples = []
    for n, record, tokens, ents, tags in parsed:
        if tags is not None:
            ex = _to_example(tokens, tags, " ")
            examples.append(Example(ex.text, ex.entities, _ident(record, src, n, fields)))
            continue
        units = []
        for s, e, typ, where in ents:
            end = e + 1 if ends == "inclusive" else e
            _check_offsets(src, n, where, s, end, len(tokens), f"tokens, {ends} end")
            units.append((s, end, typ))
        starts, stops, pos = [], [], 0
        for tok in tokens:
            starts.append(pos)
            stops.append(pos + len(tok))
            pos += len(tok) + 1
        spans = [Span(starts[s], stops[e - 1], t) for s, e, t in units]
        examples.append(Example(" ".join(tokens), spans, _ident(record, src, n, fields)))
    return _nonempty(src.path, examples)


def _tags(record: dict[str, Any], src: Records, n: int, length: int, fields: Fields = Fields()) -> list[Tag]:
    key = fields.key("tags", record, src, n)
    raw = _field(record, key, list, src, n, "a list of tags, one per token")
    if len(raw) != length:
        raise src.error(n, key, f"{len(raw)} tags for {length} tokens")
    names = src.class_names.get(key)
    tags = []
    for i, tag in enumerate(raw):
        if isinstance(tag, int) and not isinstance(tag, bool):
            if names is None or not 0 <= tag < len(names):
                raise src.error(n, f"{key}[{i}]", f"integer tag {tag} without a label name (the file carries no "
                                "ClassLabel names for this column; write the tags as strings)")
            tag = names[tag]
        if not isinstance(tag, str):
            raise src.error(n, f"{key}[{i}]", f"expected a tag string, got {type(tag).__name__}")
        try:
            tags.append(parse_tag(tag))
        except ValueError as err:
            raise src.error(n, f"{key}[{i}]", str(err)) from None
    return tags


def write_span_jsonl(examples: Iterable[Example], path: str | Path) -> int:
    """Write examples as span JSONL (UTF-8, not ASCII-escaped); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for ex in examples:
            ents = [{"start": s.start, "end": s.end, "type": s.type} for s in ex.entities]
            f.write(json.dumps({"id": ex.id, "text": ex.text, "entities": ents}, ensure_ascii=False) + "\n")
            count += 1
    return count


# -- CoNLL columns -------------------------------------------------------------------------------


def read_conll(path: str | Path, token_column: int = 0, tag_column: int | Sequence[int] = -1,
               scheme: str = "auto", notes: dict[str, Any] | None = None) -> list[Example]:
    """Whitespace-separated columns, one token per line, a blank line between sentences.

    ``-DOCSTART-`` lines and ``# ...`` comment lines (:func:`_is_comment`) are skipped. Every line
    must have as many columns as the first one;
    columns are indices into that (negative counts from the end). Text is the tokens joined
    with single spaces. ``tag_column`` may list several columns: each is one nesting level
    (outer and embedded entities), their spans are merged. A column left unread that holds
    valid tags with entities in it gets a :class:`DataWarning` naming it and its entity counts.
    ``scheme`` restricts the allowed tags (``iob1``/``iob2`` reject E-/S-/L-/U-); decoding is
    the same for all (see :func:`tags_to_spans`).
    """
    _check_scheme(scheme)
    path = Path(path)
    wanted = [tag_column] if isinstance(tag_column, int) else list(tag_column)
    if not wanted:
        raise ValueError("conll_tag_column: an empty list (name at least one tag column)")
    sentences: list[list[tuple[int, list[str]]]] = [[]]  # (line number, columns) per token
    width = tok_i = -1
    tag_is: list[int] = []
    for n, line in enumerate(_lines(path), 1):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-" or (0 <= tok_i < len(cols) and cols[tok_i] == "-DOCSTART-"):
            if sentences[-1]:
                sentences.append([])
            continue
        if _is_comment(line, cols, token_column, width):
            continue
        if width < 0:
            width = len(cols)
            tok_i, tag_is = _columns(width, token_column, wanted, path, n)
        if len(cols) != width:
            raise DataError(str(path), n, "columns", f"expected {width} columns like the first token line, "
                            f"found {len(cols)}")
        sentences[-1].append((n, cols))
    sentences = [rows for rows in sentences if rows]
    examples = []
    for rows in sentences:
        tokens = [cols[tok_i] for _, cols in rows]
        spans: list[Span] = []
        for ti in tag_is:
            tags = [_read_tag(cols[ti], scheme, path, n, f"tag (column {ti})") for n, cols in rows]
            spans += _to_example(tokens, tags, " ").entities
        examples.append(Example(" ".join(tokens), spans))
    unread = _warn_unread_tag_columns(path, sentences, width, [tok_i, *tag_is], label_set(examples))
    if notes is not None:
        notes["tag_columns"] = tag_is
        if unread:
            notes["unread_tag_columns"] = unread
    return _nonempty(path, examples)


def _is_comment(line: str, cols: list[str], token_column: int, width: int) -> bool:
    """``# ...`` lines (GermEval's source lines, CoNLL-U's ``# sent_id``): a ``#`` and whitespace at
    the start of the line, where the token is not the first column or the column count is not a
    token line's (so a ``#`` token of a two-column file still reads as a token)."""
    if not (cols[0] == "#" and line[:1] == "#"):
        return False
    return token_column != 0 or (width > 0 and len(cols) != width) or width < 0 and len(cols) > 2


def _warn_unread_tag_columns(path: Path, sentences: list[list[tuple[int, list[str]]]], width: int,
                             read: list[int], read_types: list[str]) -> dict[int, int]:
    """Warn about each unread column whose every value is a tag and whose entity types overlap
    the read ones (another nesting level of the same annotation; CoNLL-2003's chunk column, with
    NP/VP types, is not one). Returns {column: entities in it} of those."""
    unread = {}
    for col in range(max(width, 0)):
        if col in read:
            continue
        types: Counter[str] = Counter()
        try:
            for rows in sentences:
                types.update(t for _, _, t in tags_to_spans([parse_tag(cols[col]) for _, cols in rows]))
        except ValueError:
            continue  # not a tag column (tokens, POS, lemmas, ...)
        if types.keys() & set(read_types):
            unread[col] = sum(types.values())
            counts = ", ".join(f"{t} {c}" for t, c in types.most_common(6)) + (", ..." if len(types) > 6 else "")
            warnings.warn(f"{path}: column {col} holds tags too ({sum(types.values())} entities: {counts}) and is "
                          f"not read; read it as another nesting level with data.conll_tag_column: "
                          f"{sorted(set(read[1:]) | {col})} (columns count from 0)", DataWarning, stacklevel=3)
    return unread


def _columns(width: int, token_column: int, tag_columns: Sequence[int], path: Path,
             line: int) -> tuple[int, list[int]]:
    def pick(name: str, col: int) -> int:
        if not -width <= col < width:
            raise DataError(str(path), line, f"{name} column",
                            f"column {col} does not exist: the line has {width} columns")
        return col % width

    tok = pick("token", token_column)
    tags = []
    for col in tag_columns:
        tag = pick("tag", col)
        if tag == tok:
            raise DataError(str(path), line, "columns", f"the token and tag columns are the same (column "
                            f"{tok} of {width}); a CoNLL line needs at least a token and a tag")
        if tag not in tags:
            tags.append(tag)
    return tok, tags


# -- dispatch ------------------------------------------------------------------------------------


def record_layout(record: dict[str, Any], fields: Fields = Fields()) -> list[str]:
    """The record formats a JSON object / table row could be in (one, or several when ambiguous)."""
    if is_doccano(record) and not fields.given:
        return ["doccano"]
    found = []
    tokens = fields.find("tokens", record)
    if tokens is not None and isinstance(record.get(tokens), list):
        found.append("token_jsonl")
    label = fields.given.get("entities", "label")
    text = fields.find("text", record)
    if label in record and text is not None:
        value = record[label]
        nested = isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values())
        if isinstance(value, dict):
            found.append("offsets_jsonl" if nested else "surface_jsonl")
    entities = fields.find("entities", record)
    if entities is not None and text is not None and not isinstance(record.get(entities), dict):
        found.append("span_jsonl")
    return found


def detect_format(path: str | Path, fields: Fields = Fields()) -> str:
    """Tell the NER format from the content, with the file extension as a hint.

    Annotation-tool exports are told first (:func:`spanfirst.data.annotation_tools.sniff`: a brat
    folder, a Label Studio task list, doccano records). Parquet/Arrow files and JSON lines are told
    by their first record's keys (:func:`record_layout`; a record that fits several layouts is an
    error listing them). A ``##`` line first, or a ``<whitespace><TAB>tag`` line (a character token,
    impossible in CoNLL), means ``klue_bio``; anything else is ``conll``.
    """
    path = Path(path)
    tool = sniff(path)
    if tool is not None and not (tool == "doccano" and fields.given):
        return tool
    if not path.is_file():
        raise FileNotFoundError(f"{path}: NER data file not found" + (" (a folder that holds no brat .ann files)"
                                                                       if path.is_dir() else ""))
    if is_table_file(path):
        src = read_records(path, limit=1)
        if not src.rows:
            raise src.error(None, None, "no examples found (empty table)")
        return _one_layout(src, *src.rows[0], fields)
    lines = _lines(path)
    first = next(((n, ln) for n, ln in enumerate(lines, 1) if ln.strip()), None)
    if first is None:
        raise DataError(str(path), None, None, "no examples found (empty file)")
    n, line = first
    if line.lstrip().startswith("[") and path.suffix.lower() in _JSON_SUFFIXES:
        raise DataError(str(path), n, None, "a JSON list, but not a Label Studio export (tasks with 'data' and "
                        "'annotations'); NER JSON files hold one object per line")
    if line.lstrip().startswith("{") or path.suffix.lower() in _JSON_SUFFIXES:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return "span_jsonl"  # its reader reports the bad line
        if not isinstance(record, dict):
            raise DataError(str(path), n, None, f"expected a JSON object, got {type(record).__name__}")
        return _one_layout(Records(path, []), n, record, fields)
    if line.startswith("##"):
        return "klue_bio"
    if any(len(ln) > 2 and ln[0].isspace() and ln[1] == "\t" and ln[2:].strip() for ln in lines[:5000]):
        return "klue_bio"
    return "conll"


def _one_layout(src: Records, n: int, record: dict[str, Any], fields: Fields = Fields()) -> str:
    found = record_layout(record, fields)
    if len(found) == 1:
        return found[0]
    keys = ", ".join(repr(k) for k in list(record)[:12])
    if found:
        raise src.error(n, None, f"this record fits several layouts ({', '.join(found)}); set data.format to "
                        f"the one meant (its keys: {keys})")
    raise src.error(n, None, "cannot tell the record layout from its keys "
                    f"({keys}): expected 'text' + 'entities' (span_jsonl), 'text' + 'label' with surface forms "
                    "(surface_jsonl) or with offsets per mention (offsets_jsonl), 'tokens' + 'entities' or "
                    "'ner_tags' (token_jsonl), or a doccano record; name the keys with data.fields (roles: "
                    f"{', '.join(FIELD_NAMES)})")


def read_ner(path: str | Path, fmt: str = "auto", *, conll_token_column: int = 0,
             conll_tag_column: int | Sequence[int] = -1, conll_scheme: str = "auto", offsets: str = "auto",
             limit: int | None = None, notes: dict[str, Any] | None = None, fields: dict[str, str] | None = None,
             offset_unit: str = "auto", on_mismatch: str = "fail") -> list[Example]:
    """Read an NER file (or a brat folder) in ``fmt`` (``auto`` or one of :data:`NER_FORMATS`);
    ``limit`` keeps the first N; ``notes`` receives what the reader decided itself (``format``,
    ``offsets``, an annotation tool's offset unit and what it left unread); ``fields`` maps record
    keys to roles (:class:`Fields`)."""
    keys = Fields(dict(fields or {}))
    if fmt != "auto" and fmt not in NER_FORMATS:
        raise ValueError(f"unknown NER format '{fmt}'; valid formats: auto, {', '.join(NER_FORMATS)}")
    _check_scheme(conll_scheme)
    if offsets not in OFFSETS:
        raise ValueError(f"unknown offsets convention '{offsets}'; valid: {', '.join(OFFSETS)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or >= 0, got {limit}")
    fmt = detect_format(path, keys) if fmt == "auto" else fmt
    if notes is not None:
        notes["format"] = fmt
    if fmt in TOOL_FORMATS:
        read = read_documents(path, fmt, offset_unit=offset_unit, on_mismatch=on_mismatch, text_field=keys.given.get("text"))
        if notes is not None:
            notes.update({**read.notes, **count_layers(read)})
        examples = ner_examples(read)
    elif fmt == "klue_bio":
        examples = read_klue_bio(path, conll_scheme)
    elif fmt == "surface_jsonl":
        examples = read_surface_jsonl(path, keys)
    elif fmt == "span_jsonl":
        examples = read_span_jsonl(path, keys)
    elif fmt == "offsets_jsonl":
        examples = read_offsets_jsonl(path, offsets, notes, keys)
    elif fmt == "token_jsonl":
        examples = read_token_jsonl(path, offsets, notes, keys)
    else:
        examples = read_conll(path, conll_token_column, conll_tag_column, conll_scheme, notes)
    if limit is not None and notes is not None and len(examples) > limit:
        notes["examples_in_file"] = len(examples)  # the summary counts the first ``limit``
    return examples if limit is None else examples[:limit]
