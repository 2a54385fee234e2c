"""Load a saved span-first checkpoint and extract entities from raw texts (no Ray needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from spanfirst.data.alignment import AlignedExample, encode
from spanfirst.ner.task import build_ner_model, predict_aligned
from spanfirst.tasks import load_checkpoint


class NerPredictor:
    def __init__(self, model, tokenizer, cfg, labels: dict[str, Any], device: str | torch.device = "cpu") -> None:
        self.model, self.tokenizer, self.cfg = model.to(device), tokenizer, cfg
        self.types: list[str] = labels["types"]

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "NerPredictor":
        model, tokenizer, cfg, labels = load_checkpoint(path, build_ner_model)
        if labels.get("task") != "ner":
            raise ValueError(f"{path}: a '{labels.get('task')}' checkpoint, not an NER one")
        return cls(model, tokenizer, cfg, labels, device)

    @torch.no_grad()
    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[list[dict[str, Any]]]:
        """Entities per text: ``{"start", "end", "type", "score", "text"}`` (end exclusive)."""
        items = [AlignedExample(enc) for enc in encode(self.tokenizer, list(texts), self.cfg.model.max_length)]
        preds = predict_aligned(self.model, items, range(len(items)), self.types, self.tokenizer.pad_token_id,
                                batch_size, self.cfg.ner.length_bins)
        results: list[list[dict[str, Any]]] = [[] for _ in texts]
        for p in preds:
            text = texts[p.index]
            results[p.index] = sorted(
                ({"start": a, "end": b, "type": t, "score": round(sc, 6), "text": text[a:b]} for a, b, t, sc in p.char_spans),
                key=lambda d: (d["start"], d["end"]),
            )
        return results
