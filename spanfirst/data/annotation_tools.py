"""Annotation-tool exports as documents: doccano JSONL, Label Studio JSON, brat standoff.

- ``doccano``: one JSON object a line, ``{"text", "label" (or "labels"): [[start, end, type], ...]}``
  (sequence labelling) or ``{"text", "entities": [{"id", "label", "start_offset", "end_offset"}],
  "relations": [{"from_id", "to_id", "type"}]}`` (relation labelling).
- ``label_studio``: the JSON export, a list of tasks ``{"data": {"text"}, "annotations": [{"result":
  [...], "was_cancelled"}]}``; span results ``{"type": "labels", "id", "value": {"start", "end", "text",
  "labels"}}``, relation results ``{"type": "relation", "from_id", "to_id", "direction", "labels"}``.
  A task annotated several times is read from its newest annotation that was not cancelled; the
  others are counted in the notes.
- ``brat``: a folder of ``.txt`` + ``.ann`` pairs; ``T`` lines are entities, ``R`` lines relations.
  Discontinuous ``T`` spans, events, equivalences, attributes, normalisations and notes are
  reported (counted, with the first few named), never read or merged.

Offsets are converted by :func:`spanfirst.data.documents.resolve` (code points or UTF-16, decided
per file). Bad input is a :class:`DataError` naming the file, the line (or task) and the field.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from spanfirst.data.documents import DocumentRead, RawDocument, RawEntity, Relation, resolve
from spanfirst.data.offsets import int_offset
from spanfirst.errors import DataError

TOOL_FORMATS = ("doccano", "label_studio", "brat")


def read_documents(path: str | Path, fmt: str, *, offset_unit: str = "auto", on_mismatch: str = "fail",
                   text_field: str | None = None) -> DocumentRead:
    """Read an annotation-tool export (``fmt`` one of :data:`TOOL_FORMATS`) as documents; the notes
    say the format, the offset unit and why, and what was left unread."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: data file not found")
    notes: dict[str, Any] = {"format": fmt}
    if fmt == "doccano":
        raws = _doccano(path, notes)
    elif fmt == "label_studio":
        raws = _label_studio(path, notes, text_field)
    elif fmt == "brat":
        raws = _brat(path, notes)
    else:
        raise ValueError(f"unknown annotation-tool format '{fmt}'; valid: {', '.join(TOOL_FORMATS)}")
    if not raws:
        raise DataError(str(path), None, None, "no annotated texts found")
    return resolve(raws, notes, offset_unit, on_mismatch)


def texts_of(path: str | Path, fmt: str, text_field: str | None = None) -> list[str]:
    """Every text of an export, annotated or not (what a model pre-annotates): each task's,
    record's or ``.txt`` file's text, in the file's order."""
    path = Path(path)
    if fmt == "brat":
        return [raw.text for raw in _brat(path, {})] + [
            p.read_text(encoding="utf-8-sig") for p in sorted(path.glob("*.txt")) if not p.with_suffix(".ann").is_file()]
    if fmt == "doccano":
        from spanfirst.data.readers import iter_jsonl

        texts = []
        for n, record in iter_jsonl(path):
            if not isinstance(record.get(text_field or "text"), str):
                raise DataError(str(path), n, text_field or "text", "missing or not a string")
            texts.append(record[text_field or "text"])
        return texts
    tasks = json.loads(path.read_text(encoding="utf-8-sig"))
    return [_task_text(task.get("data") or {}, str(path), t, text_field) for t, task in enumerate(tasks, 1)]


def sniff(path: str | Path) -> str | None:
    """The annotation-tool format a file or folder is in, or None: a folder of ``.ann`` files is
    brat; a JSON array of tasks with ``data`` is Label Studio; a JSON-lines object with ``relations``,
    doccano-style ``entities`` (``start_offset``) or a ``label``/``labels`` list is doccano."""
    path = Path(path)
    if path.is_dir():
        return "brat" if any(path.glob("*.ann")) else None
    if not path.is_file():
        return None
    with path.open("rb") as f:
        head = f.read(1 << 16).decode("utf-8-sig", errors="replace").lstrip()
    if head.startswith("["):
        return "label_studio" if '"data"' in head or '"annotations"' in head else None
    if not head.startswith("{"):
        return None
    try:
        record = json.loads(head.split("\n", 1)[0])
    except json.JSONDecodeError:
        return None
    return "doccano" if isinstance(record, dict) and is_doccano(record) else None


def is_doccano(record: dict[str, Any]) -> bool:
    """A doccano record: text with a ``label``/``labels`` list, or ``entities`` with ``start_offset``
    or a ``relations`` list beside them."""
    if not isinstance(record.get("text"), str):
        return False
    if any(isinstance(record.get(k), list) for k in ("label", "labels")):
        return True
    ents = record.get("entities")
    return isinstance(ents, list) and ("relations" in record or any(isinstance(e, dict) and "start_offset" in e
                                                                     for e in ents))


def _label(value: Any, source: str, line: int | None, where: str, unit: str = "line") -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError(source, line, where, f"expected a non-empty label, got {value!r}", unit=unit)
    return value


# -- doccano -------------------------------------------------------------------------------------


def _doccano(path: Path, notes: dict[str, Any]) -> list[RawDocument]:
    from spanfirst.data.readers import iter_jsonl

    src, raws = str(path), []
    for n, record in iter_jsonl(path):
        text = record.get("text")
        if not isinstance(text, str):
            raise DataError(src, n, "text", f"expected the text as a string, got {type(text).__name__}")
        raw = RawDocument(src, n, "line", str(record.get("id", "") or ""), text)
        key = next((k for k in ("label", "labels") if isinstance(record.get(k), list)), None)
        if key is not None:
            for k, item in enumerate(record[key]):
                where = f"{key}[{k}]"
                if not isinstance(item, (list, tuple)) or len(item) != 3:
                    raise DataError(src, n, where, f"expected [start_offset, end_offset, label], got {item!r}")
                a, b = (int_offset(x, src, n, where) for x in item[:2])
                raw.entities.append(RawEntity(f"#{k}", a, b, _label(item[2], src, n, where), None, where))
        elif isinstance(record.get("entities"), list):
            for k, ent in enumerate(record["entities"]):
                where = f"entities[{k}]"
                if not isinstance(ent, dict):
                    raise DataError(src, n, where, f"expected an object, got {type(ent).__name__}")
                missing = [key for key in ("start_offset", "end_offset", "label") if key not in ent]
                if missing:
                    raise DataError(src, n, where, f"missing {missing} (doccano entities have id, label, "
                                    "start_offset, end_offset)")
                raw.entities.append(RawEntity(str(ent.get("id", f"#{k}")), int_offset(ent["start_offset"], src, n, where),
                                              int_offset(ent["end_offset"], src, n, where),
                                              _label(ent["label"], src, n, f"{where}.label"), None, where))
            for k, rel in enumerate(record.get("relations") or []):
                where = f"relations[{k}]"
                if not isinstance(rel, dict) or not {"from_id", "to_id", "type"} <= set(rel):
                    raise DataError(src, n, where, f"expected {{from_id, to_id, type}}, got {rel!r}")
                raw.relations.append(Relation(str(rel["from_id"]), str(rel["to_id"]),
                                              _label(rel["type"], src, n, f"{where}.type"), where))
        else:
            raise DataError(src, n, "label", "missing: a doccano record has a 'label' list ([start, end, type]) "
                            "or 'entities' (and 'relations')")
        raws.append(raw)
    return raws


# -- Label Studio --------------------------------------------------------------------------------


def _label_studio(path: Path, notes: dict[str, Any], text_field: str | None) -> list[RawDocument]:
    src = str(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise DataError(src, err.lineno, None, f"not valid JSON: {err.msg} (column {err.colno})") from None
    except UnicodeDecodeError:
        raise DataError(src, None, None, "not UTF-8 text") from None
    if not isinstance(tasks, list):
        raise DataError(src, None, None, f"expected a Label Studio JSON export (a list of tasks), got "
                        f"{type(tasks).__name__}")
    count: Counter[str] = Counter()
    raws = []
    for t, task in enumerate(tasks, 1):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise DataError(src, t, "data", "expected a task object with a 'data' object", unit="task")
        text = _task_text(task["data"], src, t, text_field)
        annotations = task.get("annotations", task.get("completions")) or []
        if not isinstance(annotations, list):
            raise DataError(src, t, "annotations", "expected a list", unit="task")
        usable = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
        count["annotations_cancelled"] += len(annotations) - len(usable)
        if not usable:
            count["tasks_without_annotation"] += 1  # nothing to learn from: skipped, not read as "no entities"
            continue
        if len(usable) > 1:
            count["tasks_with_several_annotations"] += 1
            count["annotations_not_used"] += len(usable) - 1
        newest = max(usable, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""),
                                            a.get("id") if isinstance(a.get("id"), int) else 0))
        k = annotations.index(newest)
        raw = RawDocument(src, t, "task", str(task.get("id", t)), text)
        _ls_results(raw, newest.get("result") or [], f"annotations[{k}].result", count)
        raws.append(raw)
    notes.update({key: count[key] for key in ("tasks_without_annotation", "tasks_with_several_annotations",
                                              "annotations_not_used", "annotations_cancelled",
                                              "relations_without_label", "other_results") if count[key]})
    return raws


def _task_text(data: dict[str, Any], src: str, t: int, text_field: str | None) -> str:
    """``data[text_field]``, else ``data["text"]``, else its only string value."""
    if text_field:
        if not isinstance(data.get(text_field), str):
            raise DataError(src, t, f"data.{text_field}", f"missing or not a string (data.fields.text); the task's "
                            f"data keys are {list(data)}", unit="task")
        return data[text_field]
    if isinstance(data.get("text"), str):
        return data["text"]
    strings = [k for k, v in data.items() if isinstance(v, str)]
    if len(strings) != 1:
        raise DataError(src, t, "data", f"cannot tell which of {strings or list(data)} holds the text; name it with "
                        "data.fields.text", unit="task")
    return data[strings[0]]


def _ls_results(raw: RawDocument, results: Any, where: str, count: Counter[str]) -> None:
    if not isinstance(results, list):
        raise DataError(raw.source, raw.line, where, "expected a list of results", unit=raw.unit)
    for k, res in enumerate(results):
        at = f"{where}[{k}]"
        if not isinstance(res, dict):
            raise DataError(raw.source, raw.line, at, f"expected an object, got {type(res).__name__}", unit=raw.unit)
        kind = res.get("type")
        if kind == "relation":
            labels = res.get("labels") or []
            if not labels:
                count["relations_without_label"] += 1
                continue
            ends = (str(res.get("from_id")), str(res.get("to_id")))
            direction = res.get("direction", "right")
            pairs = {"right": [ends], "left": [ends[::-1]], "bi": [ends, ends[::-1]]}.get(direction)
            if pairs is None:
                raise DataError(raw.source, raw.line, f"{at}.direction", f"expected right, left or bi, got "
                                f"{direction!r}", unit=raw.unit)
            for label in labels:
                for s, o in pairs:
                    raw.relations.append(Relation(s, o, _label(label, raw.source, raw.line, f"{at}.labels", raw.unit), at))
            continue
        value = res.get("value")
        if not isinstance(value, dict) or not any(isinstance(value.get(key), list) for key in ("labels", "hypertextlabels")):
            count["other_results"] += 1  # choices, text areas, ratings: not entities
            continue
        labels = value.get("labels") if isinstance(value.get("labels"), list) else value["hypertextlabels"]
        if "start" not in value or "end" not in value:
            raise DataError(raw.source, raw.line, f"{at}.value", "a span label without start/end", unit=raw.unit)
        a, b = (int_offset(value[key], raw.source, raw.line, f"{at}.value.{key}", raw.unit) for key in ("start", "end"))
        surface = value.get("text") if isinstance(value.get("text"), str) else None
        ident = str(res.get("id", f"#{k}"))
        for j, label in enumerate(labels):  # several labels on one span: one entity each
            raw.entities.append(RawEntity(ident if j == 0 else f"{ident}#{j}", a, b,
                                          _label(label, raw.source, raw.line, f"{at}.value.labels", raw.unit),
                                          surface, at))


# -- brat ----------------------------------------------------------------------------------------


def _brat(folder: Path, notes: dict[str, Any]) -> list[RawDocument]:
    if not folder.is_dir():
        raise DataError(str(folder), None, None, "brat standoff is a folder of .txt and .ann files")
    unread: Counter[str] = Counter()
    examples: list[str] = []
    raws = []
    for ann in sorted(folder.glob("*.ann")):
        txt = ann.with_suffix(".txt")
        if not txt.is_file():
            raise DataError(str(ann), None, None, f"no text file {txt.name} beside it")
        with txt.open(encoding="utf-8-sig", newline="") as f:  # offsets count \r\n as two characters
            text = f.read()
        raw = RawDocument(str(ann), None, "line", ann.stem, text)
        with ann.open(encoding="utf-8-sig", newline="") as f:
            lines = f.read().split("\n")
        for n, line in enumerate(lines, 1):
            line = line.rstrip("\r")
            if not line.strip():
                continue
            kind = _brat_line(raw, line, n, str(ann))
            if kind:
                unread[kind] += 1
                if len(examples) < 5:
                    examples.append(f"{ann.name} line {n}: {line[:80]}")
        raws.append(raw)
    lonely = sorted(p.name for p in folder.glob("*.txt") if not p.with_suffix(".ann").is_file())
    if lonely:
        notes["texts_without_ann"] = len(lonely)
    notes["documents_in_folder"] = len(raws)
    if unread:
        notes["not_read"] = dict(sorted(unread.items()))
        notes["not_read_examples"] = examples
    return raws


_BRAT_UNREAD = {"E": "events", "A": "attributes", "M": "attributes", "N": "normalizations", "#": "notes",
                "*": "equivalences"}


def _brat_line(raw: RawDocument, line: int, n: int, src: str) -> str | None:
    """Read a ``T`` or ``R`` line into ``raw``; the kind of anything else (reported, not read)."""
    parts = line.split("\t")
    ident = parts[0]
    if ident[:1] in _BRAT_UNREAD:
        return _BRAT_UNREAD[ident[:1]]
    if ident[:1] not in ("T", "R") or len(parts) < 2:
        raise DataError(src, n, "id", f"expected a brat annotation line (T, R, E, A, M, N, # or *), got {line[:80]!r}")
    fields = parts[1].split(" ")
    if ident[0] == "T":
        if len(parts) < 3 or len(fields) < 3:
            raise DataError(src, n, ident, f"expected 'T<id><TAB><type> <start> <end><TAB><text>', got {line[:80]!r}")
        if ";" in parts[1]:
            return "discontinuous entities"  # fragments of one mention: not one span, never merged
        a, b = (_brat_int(x, src, n, ident) for x in fields[1:3])
        raw.entities.append(RawEntity(ident, a, b, fields[0], "\t".join(parts[2:]), ident))
        return None
    args = dict(f.split(":", 1) for f in fields[1:] if ":" in f)
    if len(fields) != 3 or len(args) != 2:
        raise DataError(src, n, ident, f"expected 'R<id><TAB><type> Arg1:<T id> Arg2:<T id>', got {line[:80]!r}")
    first, second = (args[k] for k in sorted(args))  # Arg1, Arg2 (brat's roles, in order)
    raw.relations.append(Relation(first, second, fields[0], ident))
    return None


def _brat_int(value: str, src: str, n: int, where: str) -> int:
    if not value.isdigit():
        raise DataError(src, n, where, f"expected an integer offset, got {value!r}")
    return int(value)
