"""Load a saved RE checkpoint and classify relations (no Ray needed); write submission CSVs."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spanfirst.data.types import RelationExample
from spanfirst.re.features import featurize
from spanfirst.re.reader import parse_re_record
from spanfirst.re.markers import add_marker_tokens
from spanfirst import checkpoint as ckpt
from spanfirst.re.task import ReTask, predict_logits, softmax


class RePredictor:
    """A checkpoint's model, tokenizer (marker tokens included) and label order."""

    def __init__(self, model, tokenizer, cfg, labels: dict[str, Any], device: str | torch.device = "cpu") -> None:
        self.model, self.tokenizer, self.cfg = model.to(device), tokenizer, cfg
        self.labels: list[str] = labels["labels"]
        self.negative: str = labels.get("negative_label", cfg.data.negative_label)
        self.marker_style: str = labels.get("marker_style", cfg.re.marker_style)
        self.markers: list[str] = labels.get("marker_tokens", [])
        self.entity_types: list[str] = labels.get("entity_types", [])
        add_marker_tokens(self.tokenizer, self.markers)  # normally already in the saved tokenizer
        if len(self.tokenizer) > model.encoder.get_input_embeddings().num_embeddings:
            raise ValueError("the checkpoint's tokenizer has more tokens than its encoder embeddings")

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "RePredictor":
        return cls.from_checkpoint(ckpt.read(path, task="re"), device)

    @classmethod
    def from_checkpoint(cls, checkpoint: ckpt.Checkpoint, device: str | torch.device = "cpu") -> "RePredictor":
        model, tokenizer = checkpoint.load_model(ReTask.build_from_checkpoint)
        return cls(model, tokenizer, checkpoint.cfg, checkpoint.labels, device)

    def logits(self, examples: Sequence[RelationExample], batch_size: int = 64) -> np.ndarray:
        """(N, C) logits in :attr:`labels` order."""
        if not examples:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        features, _ = featurize(self.tokenizer, list(examples), self.marker_style, self.markers, None,
                                self.cfg.model.max_length, self.entity_types)
        return predict_logits(self.model, features, self.tokenizer.pad_token_id, batch_size)

    def predict_proba(self, examples: Sequence[RelationExample], batch_size: int = 64) -> np.ndarray:
        """(N, C) probabilities in :attr:`labels` order."""
        return softmax(self.logits(examples, batch_size).astype(np.float64))

    def predict(self, records: Sequence[dict[str, Any] | RelationExample], batch_size: int = 64) -> list[dict[str, Any]]:
        """``{"text", "subject": {start, end, type}, "object": {...}}`` records (end exclusive) ->
        ``{"label", "score", "probs": {label: p}}`` with ``probs`` over every label in saved order."""
        examples = [r if isinstance(r, RelationExample) else parse_re_record(r, "<records>", i + 1, require_label=False)
                    for i, r in enumerate(records)]
        probs = self.predict_proba(examples, batch_size)
        out = []
        for row in probs:
            best = int(row.argmax())
            out.append({"label": self.labels[best], "score": float(row[best]),
                        "probs": {label: float(p) for label, p in zip(self.labels, row)}})
        return out


def write_submission(path: str | Path, ids: Sequence[str], probs: np.ndarray, labels: Sequence[str]) -> Path:
    """The KLUE-style submission CSV: ``id, pred_label, probs`` (probs a JSON list in ``labels`` order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    probs = np.asarray(probs, dtype=float)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "pred_label", "probs"])
        for ex_id, row in zip(ids, probs):
            writer.writerow([ex_id, labels[int(row.argmax())], json.dumps([round(float(p), 6) for p in row])])
    return path


def predict_file(checkpoint: str | Path, data: str | Path, out: str | Path, fmt: str = "auto",
                 batch_size: int = 64, device: str = "cpu") -> Path:
    """Classify every row of an RE file (labels not needed, e.g. the KLUE unlabeled CSV) and write
    the submission CSV."""
    from spanfirst.re.reader import read_re_as_configured

    predictor = RePredictor.load(checkpoint, device)
    read = read_re_as_configured(data, predictor.cfg.data, fmt, require_label=False)
    probs = predictor.predict_proba(read.examples, batch_size)
    return write_submission(out, [ex.id for ex in read.examples], probs, predictor.labels)
