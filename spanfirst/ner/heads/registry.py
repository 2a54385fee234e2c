"""Every NER head by name (``model.head``): a static table, imported lazily, that fails loudly.

Adding a head is one file in ``spanfirst/ner/heads/`` with a :class:`~spanfirst.ner.heads.base.NerHead`
subclass, plus one line in :data:`HEADS`. Code outside the library (a plugin, a test) calls
:func:`register_head` instead; Ray workers must then import that code too (e.g. from the module
that defines the head, imported by the config's ``model.head`` user).

This module imports nothing heavy, so the config can validate ``model.head`` against it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spanfirst.ner.heads.base import NerHead

HEADS: dict[str, str] = {
    "span_first": "spanfirst.ner.heads.span_first:SpanFirstHead",
    "bio": "spanfirst.ner.heads.bio:BioHead",
    "global_pointer": "spanfirst.ner.heads.global_pointer:GlobalPointerHead",
    "efficient_global_pointer": "spanfirst.ner.heads.global_pointer:EfficientGlobalPointerHead",
    "gliner": "spanfirst.ner.heads.gliner:GlinerHead",
}
_REGISTERED: dict[str, type[NerHead]] = {}


def register_head(cls: type[NerHead]) -> type[NerHead]:
    """Add a head defined outside the library (usable as a class decorator)."""
    from spanfirst.ner.heads.base import NerHead

    if not (isinstance(cls, type) and issubclass(cls, NerHead)):
        raise TypeError(f"{cls!r} is not a NerHead subclass")
    if cls.name in HEADS or _REGISTERED.get(cls.name, cls) is not cls:
        raise ValueError(f"an NER head named '{cls.name}' exists already")
    _REGISTERED[cls.name] = cls
    return cls


def known_heads() -> list[str]:
    return sorted({*HEADS, *_REGISTERED})


def get_head(name: str) -> type[NerHead]:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in HEADS:
        raise KeyError(f"model.head: unknown NER head '{name}'; known: {known_heads()}")
    module, _, attr = HEADS[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if cls.name != name:
        raise TypeError(f"HEADS['{name}'] = {HEADS[name]!r} names the head '{cls.name}'")
    return cls
