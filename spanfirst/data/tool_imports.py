"""A model's entities (and a composed model's relations) as an annotation tool's import file, so a
team corrects the model's output instead of annotating from nothing: doccano JSONL (``{"text",
"label": [[start, end, type]]}``, or ``entities`` + ``relations`` when there are relations) or a Label
Studio task list with ``predictions`` (each span's score, the prediction's mean score, the model
version; relations as ``relation`` results between the spans). Offsets are written in the unit the tool counts: UTF-16 units for Label Studio (a
browser's string indexes), code points for doccano unless asked otherwise. What these files hold
reads back with :mod:`spanfirst.data.annotation_tools`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from spanfirst.data.offsets import index_to_utf16

OUTPUT_FORMATS = ("jsonl", "doccano", "label-studio")
DEFAULT_UNIT = {"doccano": "code_points", "label-studio": "utf16"}


def _offset(text: str, index: int, unit: str) -> int:
    return index_to_utf16(text, index) if unit == "utf16" else index


def doccano_record(text: str, entities: Sequence[dict[str, Any]], unit: str = "code_points",
                   relations: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Sequence labelling (``label``), or relation labelling (``entities`` + ``relations``, ids from 1)
    when ``relations`` is given."""
    if relations is None:
        return {"text": text, "label": [[_offset(text, e["start"], unit), _offset(text, e["end"], unit), e["type"]]
                                        for e in entities]}
    return {"text": text,
            "entities": [{"id": k + 1, "label": e["type"], "start_offset": _offset(text, e["start"], unit),
                          "end_offset": _offset(text, e["end"], unit)} for k, e in enumerate(entities)],
            "relations": [{"id": k + 1, "from_id": r["subject"] + 1, "to_id": r["object"] + 1, "type": r["label"]}
                          for k, r in enumerate(relations)]}


def label_studio_task(text: str, entities: Sequence[dict[str, Any]], model_version: str, *, unit: str = "utf16",
                      from_name: str = "label", to_name: str = "text",
                      relations: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """One task: ``data.text`` and one prediction whose results are the entities and the relations
    between them (``from_name`` / ``to_name``: the labelling config's ``<Labels name>`` and ``<Text name>``)."""
    results = [{"id": f"p{k}", "from_name": from_name, "to_name": to_name, "type": "labels",
                "value": {"start": _offset(text, e["start"], unit), "end": _offset(text, e["end"], unit),
                          "text": text[e["start"]:e["end"]], "labels": [e["type"]]},
                "score": float(e.get("score", 1.0))} for k, e in enumerate(entities)]
    score = sum(r["score"] for r in results) / len(results) if results else 0.0
    results += [{"from_id": f"p{r['subject']}", "to_id": f"p{r['object']}", "type": "relation", "direction": "right",
                 "labels": [r["label"]]} for r in relations]
    return {"data": {to_name: text},
            "predictions": [{"model_version": model_version, "score": score, "result": results}]}


class PredictionWriter:
    """Writes (text, entities) one at a time in ``fmt`` (:data:`OUTPUT_FORMATS`): JSON lines for
    ``jsonl`` and ``doccano``, one JSON list for ``label-studio``."""

    def __init__(self, f: TextIO, fmt: str = "jsonl", model_version: str = "", unit: str | None = None) -> None:
        if fmt not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format '{fmt}'; valid: {', '.join(OUTPUT_FORMATS)}")
        self.f, self.fmt, self.model_version = f, fmt, model_version
        self.unit = unit or DEFAULT_UNIT.get(fmt, "code_points")
        self.count = 0

    def write(self, text: str, entities: Sequence[dict[str, Any]], relations: Sequence[dict[str, Any]] | None = None) -> None:
        """One text's entities, and its relations (a composed model's; None: an NER model's answer)."""
        if self.fmt == "jsonl":
            record: dict[str, Any] = {"text": text, "entities": list(entities)}
            if relations is not None:
                record["relations"] = list(relations)
        elif self.fmt == "doccano":
            record = doccano_record(text, entities, self.unit, relations)
        else:
            record = label_studio_task(text, entities, self.model_version, unit=self.unit, relations=relations or ())
        line = json.dumps(record, ensure_ascii=False)
        if self.fmt == "label-studio":
            self.f.write(("[\n" if self.count == 0 else ",\n") + line)
        else:
            self.f.write(line + "\n")
        self.count += 1

    def close(self) -> None:
        if self.fmt == "label-studio":
            self.f.write("[]\n" if self.count == 0 else "\n]\n")


def write_predictions(path: str | Path, items: Iterable[tuple], fmt: str = "jsonl", model_version: str = "",
                      unit: str | None = None) -> int:
    """Every (text, entities) or (text, entities, relations) of ``items`` into ``path``; returns how many."""
    with Path(path).open("w", encoding="utf-8") as f:
        writer = PredictionWriter(f, fmt, model_version, unit)
        for item in items:
            writer.write(*item)
        writer.close()
    return writer.count
