"""What a reader read, as a small JSON-able dict: the run's ``report.json`` ``data`` section, the
MLflow dataset entries of its runs, and ``pipelines/inspect_data.py``'s printout.

Counts are of what training and evaluation will see: examples, entities per type, how many
entities nest inside or cross another, length percentiles, rows skipped and why, and whatever the
reader decided itself (format, offsets convention, column mapping).
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spanfirst.data.types import Example, RelationExample


def file_digest(path: str | Path) -> str:
    """The first 16 hex digits of the file's SHA-256 (what MLflow shows as the dataset digest); a
    folder (brat standoff): of its files' names and contents, in name order."""
    path = Path(path)
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
        if path.is_dir():
            h.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def spread(values: Sequence[int]) -> dict[str, float]:
    """min / median / 95th percentile / max (zeros when empty)."""
    if not values:
        return {"min": 0, "median": 0, "p95": 0, "max": 0}
    ordered = sorted(values)
    return {"min": ordered[0], "median": statistics.median(ordered),
            "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], "max": ordered[-1]}


def nesting_counts(example: Example) -> tuple[int, int]:
    """(entities lying inside another entity, pairs of entities that cross) in one example."""
    spans = example.entities
    inside = sum(any(o is not s and o.start <= s.start and s.end <= o.end and (o.start, o.end) != (s.start, s.end)
                     for o in spans) for s in spans)
    crossing = sum(1 for i, a in enumerate(spans) for b in spans[i + 1:]
                   if a.start < b.start < a.end < b.end or b.start < a.start < b.end < a.end)
    return inside, crossing


def ner_summary(path: str | Path, examples: Sequence[Example], notes: dict[str, Any] | None = None) -> dict[str, Any]:
    nested = crossing = 0
    for ex in examples:
        n, c = nesting_counts(ex)
        nested, crossing = nested + n, crossing + c
    per_type = Counter(s.type for ex in examples for s in ex.entities)
    return {
        "file": str(path), "digest": file_digest(path), **(notes or {}),
        "examples": len(examples), "entities": sum(per_type.values()),
        "entities_per_type": dict(sorted(per_type.items())),
        "examples_without_entities": sum(not ex.entities for ex in examples),
        "nested_entities": nested, "crossing_pairs": crossing,
        "text_chars": spread([len(ex.text) for ex in examples]),
        "entity_chars": spread([s.end - s.start for ex in examples for s in ex.entities]),
    }


def re_summary(path: str | Path, examples: Sequence[RelationExample], skipped: int, skipped_rows: Sequence[str],
               notes: dict[str, Any] | None = None) -> dict[str, Any]:
    notes = {k: v for k, v in (notes or {}).items() if k != "column_names"}
    return {
        "file": str(path), "digest": file_digest(path), **notes,
        "examples": len(examples),
        "labels": dict(Counter(ex.label for ex in examples).most_common()),
        "entity_types": dict(sorted(Counter(s.type for ex in examples for s in (ex.subject, ex.object)).items())),
        "text_chars": spread([len(ex.text) for ex in examples]),
        "skipped_rows": skipped, "skipped_why": list(skipped_rows[:5]),
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """A person's view of one summary, a fact per line."""
    lines = [f"{summary['file']}  (sha256 {summary['digest']})"]
    for key, value in summary.items():
        if key in ("file", "digest"):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = "; ".join(map(str, value)) or "-"
        lines.append(f"  {key.replace('_', ' ')}: {value}")
    return lines
