"""Offsets as an annotation tool counted them: Python code points or UTF-16 code units.

Browser-based tools (Label Studio, doccano's front end) index a text as JavaScript does, in UTF-16
code units: every character outside the Basic Multilingual Plane (most emoji, rare CJK) counts
two, so each later offset is one too far per such character when read as a Python index. The
unit of a file is decided by which reading makes the entity texts match (:func:`decide_unit`);
readers convert once, at load time, and writers convert back for the tools that count UTF-16.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from spanfirst.errors import DataError

UNITS = ("auto", "code_points", "utf16")


def int_offset(value: Any, source: str, line: int | None, field: str, unit: str = "line") -> int:
    """An offset as a file wrote it: an int, a digit string or a whole float (pandas writes int
    columns with gaps as floats); anything else is an error naming the file, line and field."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise DataError(source, line, field, f"expected an integer offset, got {value!r}", unit=unit)


def has_astral(text: str) -> bool:
    """Whether some character of ``text`` lies outside the Basic Multilingual Plane (two UTF-16 units)."""
    return any(ord(c) > 0xFFFF for c in text)


def utf16_to_index(text: str) -> dict[int, int]:
    """UTF-16 offset -> Python index, for every offset that falls between characters (an offset
    inside a surrogate pair has none)."""
    out, unit = {}, 0
    for i, char in enumerate(text):
        out[unit] = i
        unit += 2 if ord(char) > 0xFFFF else 1
    out[unit] = len(text)
    return out


def index_to_utf16(text: str, index: int) -> int:
    """The UTF-16 offset of Python index ``index``."""
    return index + sum(1 for c in text[:index] if ord(c) > 0xFFFF)


def to_index(text: str, offset: int, unit: str) -> int | None:
    """``offset`` counted in ``unit`` as a Python index, or None where it falls outside the text
    or inside a character."""
    if unit == "code_points" or not has_astral(text):
        return offset if 0 <= offset <= len(text) else None
    return utf16_to_index(text).get(offset)


@dataclass(frozen=True)
class Mention:
    """An entity as the file wrote it: offsets in the file's unit, end exclusive, and the entity's
    text if the file gives it (the evidence for the unit)."""

    text_index: int  # which of the file's texts it lies in
    start: int
    end: int
    surface: str | None


def _matches(texts: Sequence[str], m: Mention, unit: str) -> bool:
    text = texts[m.text_index]
    a, b = to_index(text, m.start, unit), to_index(text, m.end, unit)
    if a is None or b is None or a >= b:
        return False
    return text[a:b] == m.surface if m.surface is not None else text[a:b] == text[a:b].strip()


def decide_unit(texts: Sequence[str], mentions: Iterable[Mention], configured: str = "auto") -> tuple[str, str]:
    """(``code_points`` | ``utf16``, why). As configured; else where no text has a character outside
    the BMP the units agree; else the unit under which more mentions match: their given texts, or,
    where a file gives none, spans that are in range and have no edge whitespace. Ties: code points."""
    if configured not in UNITS:
        raise ValueError(f"unknown offset unit '{configured}'; valid: {', '.join(UNITS)}")
    if configured != "auto":
        return configured, "data.offset_unit"
    astral = {i for i, t in enumerate(texts) if has_astral(t)}
    if not astral:
        return "code_points", "no character outside the Basic Multilingual Plane: the units agree"
    telling = [m for m in mentions if m.text_index in astral]
    if not telling:
        return "code_points", "no entity lies in a text with characters outside the BMP"
    with_text = [m for m in telling if m.surface is not None]
    pool, evidence = (with_text, "entity texts") if with_text else (telling, "in-range spans without edge whitespace")
    votes = {unit: sum(_matches(texts, m, unit) for m in pool) for unit in ("code_points", "utf16")}
    unit = "utf16" if votes["utf16"] > votes["code_points"] else "code_points"
    return unit, (f"{evidence} in texts with characters outside the BMP: {votes[unit]} of {len(pool)} match "
                  f"counted in {unit.replace('_', ' ')}, {votes[_other(unit)]} in {_other(unit).replace('_', ' ')}")


def _other(unit: str) -> str:
    return "utf16" if unit == "code_points" else "code_points"
