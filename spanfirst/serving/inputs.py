"""Checks of a request's rows shared by the tasks' serving code; every error names the field and row.

The serving model raises these as MLflow ``INVALID_PARAMETER_VALUE`` errors, which MLflow's
scoring server answers with HTTP 400 (and the message) instead of a 500.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


class BadRequest(ValueError):
    """A request the model cannot answer; the message names the field (and the row, 0-based)."""


def as_frame(model_input: Any, columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame from what pyfunc hands over (a DataFrame after schema enforcement, else a
    column dict, a list of records, or, for a one-column schema, a list of its values)."""
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, pd.Series):
        return model_input.to_frame(name=model_input.name or columns[0])
    if len(columns) == 1 and isinstance(model_input, (list, tuple)) and all(isinstance(t, str) for t in model_input):
        return pd.DataFrame({columns[0]: list(model_input)})
    try:
        return pd.DataFrame(model_input)
    except (TypeError, ValueError) as err:
        raise BadRequest(f"the input must be a table with the columns {list(columns)}: {err}") from None


def check_batch(frame: pd.DataFrame, columns: Sequence[str], max_batch_size: int) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadRequest(f"missing field(s) {missing}; a request needs {list(columns)}")
    check_row_count(len(frame), max_batch_size)


def check_row_count(rows: int, max_batch_size: int) -> None:
    if rows > max_batch_size:
        raise BadRequest(f"the request holds {rows:,} rows; at most {max_batch_size} rows per request "
                         "(the model's max_batch_size)")


def check_text_lengths(frame: pd.DataFrame, max_chars: int) -> None:
    """Every ``text`` at most ``max_chars`` characters: a longer one would hold a server worker for
    minutes (it is read whole, in windows), so it is refused before any work."""
    if "text" not in frame.columns:
        return
    values = frame["text"].tolist()
    if len(values) == 1 and isinstance(values[0], (list, tuple, np.ndarray)):  # {"inputs": [...]}: one row, a list
        values = list(values[0])
    check_texts(values, max_chars)


def check_texts(values: Sequence[Any], max_chars: int) -> None:
    """Every string in ``values`` (row ``i`` at index ``i``) at most ``max_chars`` characters."""
    for row, value in enumerate(values):
        if isinstance(value, str) and len(value) > max_chars:
            raise BadRequest(f"field 'text' of row {row} has {len(value):,} characters; at most {max_chars:,} per "
                             "text (the model's max_text_chars)")


def text_field(value: Any, row: int) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"field 'text' of row {row} must be a string, got {kind(value)}")
    if not value.strip():
        raise BadRequest(f"field 'text' of row {row} is empty")
    return value


def offset_field(value: Any, field: str, row: int) -> int:
    # 3.0 passes: a column with a null in another row reaches us as floats
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and float(value).is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BadRequest(f"field '{field}' of row {row} must be an integer character offset, got {kind(value)}")
    return int(value)


def type_field(value: Any, field: str, row: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"field '{field}' of row {row} must be a non-empty string, got {kind(value)}")
    return value


def kind(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else "a string"
    return f"{type(value).__name__} {value!r}"[:60]
