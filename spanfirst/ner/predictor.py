"""Load a saved span-first checkpoint and extract entities from raw texts (no Ray needed).

Texts longer than the model's window are read in overlapping token windows whose entities are
merged (:mod:`spanfirst.ner.windows`), so nothing is truncated.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from spanfirst import checkpoint as ckpt
from spanfirst.data.alignment import AlignedExample, Encoded
from spanfirst.ner.inference import decode_items, merge_text
from spanfirst.ner.task import NerTask
from spanfirst.ner.windows import TextWindows, Window


class NerPredictor:
    def __init__(self, model, tokenizer, cfg, labels: dict[str, Any], device: str | torch.device = "cpu",
                 window_overlap: int | None = None) -> None:
        self.model, self.tokenizer, self.cfg = model.to(device), tokenizer, cfg
        #: the type names of the model's type ids (a GLiNER-style model's prompted types)
        self.types: list[str] = list(getattr(model, "type_names", None) or labels["types"])
        self._types_lock = threading.Lock()
        self._windows = TextWindows(tokenizer, cfg.model.max_length, self.model.longest_span or 0, window_overlap)
        self._prefix = self._windows.prefix
        #: content tokens per window and the overlap of neighbouring windows
        self.window_size, self.window_overlap = self._windows.size, self._windows.overlap

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", window_overlap: int | None = None) -> "NerPredictor":
        return cls.from_checkpoint(ckpt.read(path, task="ner"), device, window_overlap)

    @classmethod
    def from_checkpoint(cls, checkpoint: ckpt.Checkpoint, device: str | torch.device = "cpu",
                        window_overlap: int | None = None) -> "NerPredictor":
        model, tokenizer = checkpoint.load_model(NerTask.build_from_checkpoint)
        return cls(model, tokenizer, checkpoint.cfg, checkpoint.labels, device, window_overlap)

    @property
    def open_types(self) -> bool:
        """Whether the entity types can be chosen at prediction time (types given as prompts)."""
        return hasattr(self.model, "set_types")

    def set_types(self, names: Sequence[str]) -> None:
        """Ask a GLiNER-style model for these entity types from now on (any names)."""
        if not self.open_types:
            raise ValueError(f"the '{self.cfg.model.head}' head predicts a fixed type set {self.types}; "
                             "only a gliner head takes entity types at prediction time")
        names = list(names)
        bad = [n for n in names if not isinstance(n, str) or not n.strip()]
        if not names or bad or len(set(names)) != len(names):
            raise ValueError(f"types must be distinct non-empty strings, got {names!r}")
        self.model.set_types(names, self.tokenizer)
        self.types = list(self.model.type_names)

    @contextmanager
    def _asking_for(self, types: Sequence[str] | None):
        """Use ``types`` for one call and restore the model's own afterwards (thread-safe)."""
        if not types:
            yield
            return
        with self._types_lock:
            before = list(self.types)
            self.set_types(types)
            try:
                yield
            finally:
                self.set_types(before)

    def windows(self, texts: Sequence[str]) -> list[tuple[int, Window, Encoded]]:
        """(text index, window, model input) for every window of every text; none for blank texts."""
        return self._windows.encode(texts)

    @torch.no_grad()
    def predict(self, texts: Sequence[str], batch_size: int = 64,
                types: Sequence[str] | None = None) -> list[list[dict[str, Any]]]:
        """Entities per text: ``{"start", "end", "type", "score", "text"}`` (end exclusive).

        All windows of all texts are decoded together in length-sorted batches of ``batch_size``.
        ``types`` (GLiNER-style heads only): the entity types to look for in this call."""
        texts = list(texts)
        wins = self.windows(texts)
        with self._asking_for(types):
            preds = decode_items(self.model, [AlignedExample(enc) for _, _, enc in wins], range(len(wins)),
                                 self.types, self.tokenizer.pad_token_id, batch_size)
        per_text: list[list[tuple[Window, Any]]] = [[] for _ in texts]
        for p in preds:
            i, win, _enc = wins[p.index]
            per_text[i].append((win, p))
        prefix = len(self._prefix)
        return [[{"start": a, "end": b, "type": t, "score": round(sc, 6), "text": text[a:b]}
                 for _s, _e, t, sc, a, b in merge_text(per_text[i], prefix, self.model.merge_policy)]
                for i, text in enumerate(texts)]
