"""Check a request's rows and turn them into predictor inputs; every error names the field and row.

The serving model raises these as MLflow ``INVALID_PARAMETER_VALUE`` errors, which MLflow's
scoring server answers with HTTP 400 (and the message) instead of a 500.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import pandas as pd

NER_COLUMNS = ("text",)
RE_COLUMNS = ("text", "subject_start", "subject_end", "subject_type", "object_start", "object_end", "object_type")
SIDES = ("subject", "object")


class BadRequest(ValueError):
    """A request the model cannot answer; the message names the field (and the row, 0-based)."""


def as_frame(model_input: Any, task: str) -> pd.DataFrame:
    """A DataFrame from what pyfunc hands over (a DataFrame after schema enforcement, else a
    column dict, a list of records, or a list of texts for NER)."""
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, pd.Series):
        return model_input.to_frame(name=model_input.name or "text")
    if task == "ner" and isinstance(model_input, (list, tuple)) and all(isinstance(t, str) for t in model_input):
        return pd.DataFrame({"text": list(model_input)})
    try:
        return pd.DataFrame(model_input)
    except (TypeError, ValueError) as err:
        raise BadRequest(f"the input must be a table with the columns {list(_columns(task))}: {err}") from None


def _columns(task: str) -> tuple[str, ...]:
    return NER_COLUMNS if task == "ner" else RE_COLUMNS


def check_batch(frame: pd.DataFrame, task: str, max_batch_size: int) -> None:
    missing = [c for c in _columns(task) if c not in frame.columns]
    if missing:
        raise BadRequest(f"missing field(s) {missing}; a {task.upper()} request needs {list(_columns(task))}")
    if len(frame) > max_batch_size:
        raise BadRequest(f"the request holds {len(frame)} rows; at most {max_batch_size} rows per request "
                         "(the model's max_batch_size)")


def _text(value: Any, row: int) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"field 'text' of row {row} must be a string, got {_kind(value)}")
    if not value.strip():
        raise BadRequest(f"field 'text' of row {row} is empty")
    return value


def _offset(value: Any, field: str, row: int) -> int:
    # 3.0 passes: a column with a null in another row reaches us as floats
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and float(value).is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BadRequest(f"field '{field}' of row {row} must be an integer character offset, got {_kind(value)}")
    return int(value)


def _type(value: Any, field: str, row: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"field '{field}' of row {row} must be a non-empty string, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else "a string"
    return f"{type(value).__name__} {value!r}"[:60]


def ner_texts(frame: pd.DataFrame, max_batch_size: int) -> list[str]:
    """The ``text`` column, every value a non-empty string.

    ``{"inputs": ["a", "b"]}`` and ``{"inputs": {"text": ["a", "b"]}}`` reach the model as one row
    holding the list (MLflow's reading of a dict of string lists): that list is the column."""
    if "text" in frame.columns and len(frame) == 1 and isinstance(frame["text"].iloc[0], (list, tuple, np.ndarray)):
        frame = pd.DataFrame({"text": list(frame["text"].iloc[0])})
    check_batch(frame, "ner", max_batch_size)
    return [_text(v, row) for row, v in enumerate(frame["text"].tolist())]


def re_records(frame: pd.DataFrame, max_batch_size: int) -> list[dict[str, Any]]:
    """Flat RE columns -> ``{"text", "subject": {start, end, type}, "object": {...}}`` (end exclusive),
    offsets checked against the text."""
    check_batch(frame, "re", max_batch_size)
    columns = {c: frame[c].tolist() for c in RE_COLUMNS}
    records = []
    for row in range(len(frame)):
        text = _text(columns["text"][row], row)
        record: dict[str, Any] = {"text": text}
        for side in SIDES:
            start = _offset(columns[f"{side}_start"][row], f"{side}_start", row)
            end = _offset(columns[f"{side}_end"][row], f"{side}_end", row)
            etype = _type(columns[f"{side}_type"][row], f"{side}_type", row)
            if start >= end:
                raise BadRequest(f"field '{side}_start' of row {row} ({start}) must be less than "
                                 f"'{side}_end' ({end}; end exclusive)")
            if start < 0:
                raise BadRequest(f"field '{side}_start' of row {row} ({start}) lies outside the text")
            if end > len(text):
                raise BadRequest(f"field '{side}_end' of row {row} ({end}) lies outside the text "
                                 f"(length {len(text)}; end exclusive)")
            record[side] = {"start": start, "end": end, "type": etype}
        records.append(record)
    return records


def ner_types(params: dict[str, Any] | None, predictor: Any) -> list[str] | None:
    """The ``types`` param of an NER request: entity types to look for (GLiNER-style models only);
    None when absent or empty (the model's own types)."""
    types = (params or {}).get("types")
    if types is None or (hasattr(types, "__len__") and len(types) == 0):
        return None
    if isinstance(types, str) or not isinstance(types, (list, tuple, np.ndarray)):
        raise BadRequest(f"params.types: expected a list of type names, got {_kind(types)}")
    types = list(types)
    if not predictor.open_types:
        raise BadRequest(f"params.types: this model predicts a fixed type set {predictor.types}; "
                         "only a gliner-head model takes entity types per request")
    for k, t in enumerate(types):
        if not isinstance(t, str) or not t.strip():
            raise BadRequest(f"params.types[{k}]: expected a non-empty type name, got {_kind(t)}")
    if len(set(types)) != len(types):
        raise BadRequest("params.types: type names must be distinct")
    return types
