"""Joint entity-relation corpora in the SpERT JSON layout (CoNLL04, SciERC, ADE as SpERT and its
successors publish them) written as doccano JSONL, the document-shaped file the platform reads.

Each record: ``tokens`` and ``relations`` (``{"type", "head", "tail"}``, indexes into the entities),
the entities either as ``entities`` (``{"type", "start", "end"}``, token indexes, end exclusive) or as
BILOU/BIO ``tags`` (entities in order of appearance). The text is the tokens joined by single spaces;
offsets are code points into it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def tag_entities(tags: list[str]) -> list[dict[str, Any]]:
    """Entities (token start, exclusive end, type) of a BILOU or BIO tag sequence, in order."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, kind = tag.partition("-")
        inside = prefix in ("I", "L") and current is not None and current["type"] == kind
        if current is not None and not inside:
            out.append(current)
            current = None
        if prefix in ("B", "U") or (prefix in ("I", "L") and current is None):
            current = {"type": kind, "start": i, "end": i + 1}
        elif inside:
            current["end"] = i + 1
        if prefix in ("U", "L") and current is not None:
            out.append(current)
            current = None
    return out


def to_doccano_record(record: dict[str, Any], index: int, source: Path) -> dict[str, Any]:
    tokens = record["tokens"]
    entities = record.get("entities")
    if entities is None:
        if "tags" not in record:
            raise ValueError(f"{source}: record {index} has neither 'entities' nor 'tags'")
        entities = tag_entities(record["tags"])
    starts, pos = [], 0
    for tok in tokens:
        starts.append(pos)
        pos += len(tok) + 1
    ents = [{"id": k, "label": e["type"], "start_offset": starts[e["start"]],
             "end_offset": starts[e["end"] - 1] + len(tokens[e["end"] - 1])} for k, e in enumerate(entities)]
    for r in record.get("relations", []):
        if not (0 <= r["head"] < len(ents) and 0 <= r["tail"] < len(ents)):
            raise ValueError(f"{source}: record {index}: relation {r} names an entity it does not have")
    rels = [{"id": k, "from_id": r["head"], "to_id": r["tail"], "type": r["type"]}
            for k, r in enumerate(record.get("relations", []))]
    return {"id": record.get("orig_id", index), "text": " ".join(tokens), "entities": ents, "relations": rels}


def to_doccano(source: Path, out: Path) -> Path:
    records = json.loads(Path(source).read_text(encoding="utf-8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for k, record in enumerate(records):
            f.write(json.dumps(to_doccano_record(record, k, source), ensure_ascii=False) + "\n")
    return out
