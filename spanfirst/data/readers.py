"""NER readers: every on-disk format becomes ``list[Example]`` (text + character spans) at load time.

Formats: ``klue_bio`` (character-level ``CHAR<TAB>TAG`` with ``## id<TAB>sentence`` headers),
``surface_jsonl`` (``{"title", "label": {type: [surface forms]}}``), ``span_jsonl`` (the
project's own ``{"text", "entities": [{start, end, type}]}``, end exclusive) and ``conll``
(whitespace-separated token/tag columns, IOB1, IOB2/BIO, BIOES or BILOU tags). Bad input is a
:class:`DataError` naming the file, the 1-based line and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from spanfirst.data.types import Example, Span
from spanfirst.errors import DataError

NER_FORMATS = ("klue_bio", "surface_jsonl", "span_jsonl", "conll")
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


def _field(record: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path, line: int,
           what: str, prefix: str = "") -> Any:
    if key not in record:
        raise DataError(str(path), line, prefix + key, f"missing (expected {what})")
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataError(str(path), line, prefix + key, f"expected {what}, got {type(value).__name__}")
    return value


def _ident(record: dict[str, Any], path: Path, line: int) -> str:
    value = record.get("id", "")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(str(path), line, "id", f"expected a string or an integer, got {type(value).__name__}")
    return str(value)


def _occurrences(text: str, form: str) -> list[tuple[int, int]]:
    found, at = [], text.find(form)
    while at >= 0:
        found.append((at, at + len(form)))
        at = text.find(form, at + len(form))
    return found


def read_surface_jsonl(path: str | Path) -> list[Example]:
    """``{"title" (or "text"): ..., "label": {type: [surface form, ...]}}`` per line.

    Every non-overlapping occurrence of each listed form is labelled. Longer forms claim their
    occurrences first, so a form found inside a longer listed entity is not labelled there
    (``서울`` inside ``서울대학교``) unless it occurs nowhere else. A listed form that does not
    occur in the text is an error naming the line and ``label.<type>``.
    """
    path = Path(path)
    examples = []
    for n, record in iter_jsonl(path):
        key = "title" if "title" in record or "text" not in record else "text"
        text = _field(record, key, str, path, n, "the sentence as a string ('title' or 'text')")
        label = _field(record, "label", dict, path, n, "an object mapping entity types to surface forms")
        wanted: list[tuple[str, str]] = []  # (form, type)
        for typ, forms in label.items():
            where = f"label.{typ}"
            if isinstance(forms, str):
                forms = [forms]
            if not typ or not isinstance(forms, list):
                raise DataError(str(path), n, where, "expected a non-empty type mapped to a list of strings")
            for form in forms:
                if not isinstance(form, str) or not form:
                    raise DataError(str(path), n, where, f"expected non-empty strings, got {form!r}")
                if form not in text:
                    raise DataError(str(path), n, where, f"surface form '{form}' does not occur in the text")
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
        examples.append(Example(text, spans, _ident(record, path, n)))
    return _nonempty(path, examples)


def read_span_jsonl(path: str | Path) -> list[Example]:
    """``{"text": ..., "entities": [{"start", "end", "type"}], "id"?: ...}``, end exclusive."""
    path = Path(path)
    examples = []
    for n, record in iter_jsonl(path):
        text = _field(record, "text", str, path, n, "a string")
        entities = _field(record, "entities", list, path, n, "a list of {start, end, type}")
        spans = []
        for k, ent in enumerate(entities):
            where = f"entities[{k}]"
            if not isinstance(ent, dict):
                raise DataError(str(path), n, where, f"expected an object, got {type(ent).__name__}")
            start = _field(ent, "start", int, path, n, "an integer", where + ".")
            end = _field(ent, "end", int, path, n, "an integer", where + ".")
            typ = _field(ent, "type", str, path, n, "a string", where + ".")
            if not typ:
                raise DataError(str(path), n, f"{where}.type", "empty entity type")
            if not 0 <= start < end <= len(text):
                raise DataError(str(path), n, where, f"offsets [{start}, {end}) must satisfy "
                                f"0 <= start < end <= {len(text)} (the text length)")
            spans.append(Span(start, end, typ))
        examples.append(Example(text, spans, _ident(record, path, n)))
    return _nonempty(path, examples)


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


def read_conll(path: str | Path, token_column: int = 0, tag_column: int = -1,
               scheme: str = "auto") -> list[Example]:
    """Whitespace-separated columns, one token per line, a blank line between sentences.

    ``-DOCSTART-`` lines are skipped. Every line must have as many columns as the first one;
    columns are indices into that (negative counts from the end). Text is the tokens joined
    with single spaces. ``scheme`` restricts the allowed tags (``iob1``/``iob2`` reject
    E-/S-/L-/U-); decoding is the same for all (see :func:`tags_to_spans`).
    """
    _check_scheme(scheme)
    path = Path(path)
    examples: list[Example] = []
    tokens: list[str] = []
    tags: list[Tag] = []
    width = tok_i = tag_i = -1

    def flush() -> None:
        if tokens:
            examples.append(_to_example(tokens, tags, " "))
            tokens.clear()
            tags.clear()

    for n, line in enumerate(_lines(path), 1):
        cols = line.split()
        if not cols:
            flush()
            continue
        if cols[0] == "-DOCSTART-" or (0 <= tok_i < len(cols) and cols[tok_i] == "-DOCSTART-"):
            flush()
            continue
        if width < 0:
            width = len(cols)
            tok_i, tag_i = _columns(width, token_column, tag_column, path, n)
        if len(cols) != width:
            raise DataError(str(path), n, "columns", f"expected {width} columns like the first token line, "
                            f"found {len(cols)}")
        tokens.append(cols[tok_i])
        tags.append(_read_tag(cols[tag_i], scheme, path, n, f"tag (column {tag_i})"))
    flush()
    return _nonempty(path, examples)


def _columns(width: int, token_column: int, tag_column: int, path: Path, line: int) -> tuple[int, int]:
    picked = []
    for name, col in (("token", token_column), ("tag", tag_column)):
        if not -width <= col < width:
            raise DataError(str(path), line, f"{name} column",
                            f"column {col} does not exist: the line has {width} columns")
        picked.append(col % width)
    if picked[0] == picked[1]:
        raise DataError(str(path), line, "columns", f"the token and tag columns are the same (column "
                        f"{picked[0]} of {width}); a CoNLL line needs at least a token and a tag")
    return picked[0], picked[1]


# -- dispatch ------------------------------------------------------------------------------------


def detect_format(path: str | Path) -> str:
    """Tell the NER format from the content, with the file extension as a hint.

    A ``##`` line first, or a ``<whitespace><TAB>tag`` line (a character token, impossible in
    CoNLL), means ``klue_bio``; a JSON object with ``title``/``text`` and ``label`` means
    ``surface_jsonl``, one with ``entities`` ``span_jsonl``; anything else is ``conll``.
    """
    path = Path(path)
    lines = _lines(path)
    first = next(((n, ln) for n, ln in enumerate(lines, 1) if ln.strip()), None)
    if first is None:
        raise DataError(str(path), None, None, "no examples found (empty file)")
    n, line = first
    if line.lstrip().startswith("{") or path.suffix.lower() in _JSON_SUFFIXES:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return "span_jsonl"  # its reader reports the bad line
        if isinstance(record, dict) and "label" in record and ("title" in record or "text" in record):
            return "surface_jsonl"
        if isinstance(record, dict) and "entities" in record:
            return "span_jsonl"
        raise DataError(str(path), n, None, "cannot tell the JSON-lines format: expected 'title'/'text' with "
                        "'label' (surface_jsonl) or 'text' with 'entities' (span_jsonl)")
    if line.startswith("##"):
        return "klue_bio"
    if any(len(ln) > 2 and ln[0].isspace() and ln[1] == "\t" and ln[2:].strip() for ln in lines[:5000]):
        return "klue_bio"
    return "conll"


def read_ner(path: str | Path, fmt: str = "auto", *, conll_token_column: int = 0, conll_tag_column: int = -1,
             conll_scheme: str = "auto", limit: int | None = None) -> list[Example]:
    """Read an NER file in ``fmt`` (``auto`` or one of :data:`NER_FORMATS`); ``limit`` keeps the first N."""
    if fmt != "auto" and fmt not in NER_FORMATS:
        raise ValueError(f"unknown NER format '{fmt}'; valid formats: auto, {', '.join(NER_FORMATS)}")
    _check_scheme(conll_scheme)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or >= 0, got {limit}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "klue_bio":
        examples = read_klue_bio(path, conll_scheme)
    elif fmt == "surface_jsonl":
        examples = read_surface_jsonl(path)
    elif fmt == "span_jsonl":
        examples = read_span_jsonl(path)
    else:
        examples = read_conll(path, conll_token_column, conll_tag_column, conll_scheme)
    return examples if limit is None else examples[:limit]
