"""What serving and batch prediction need from the RE task.

Request: ``text``, ``subject_start``, ``subject_end``, ``subject_type``, ``object_start``,
``object_end``, ``object_type`` (character offsets, end exclusive). Response: ``label``, ``score``
and ``probs`` (every label's probability, keys in the checkpoint's label order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spanfirst.checkpoint import Checkpoint
from spanfirst.serving.inputs import BadRequest, check_batch, offset_field, text_field, type_field
from spanfirst.tasks import TaskServing

SIDES = ("subject", "object")
COLUMNS = ("text", *(f"{side}_{key}" for side in SIDES for key in ("start", "end", "type")))
EXAMPLE = {"text": ["이순신은 조선 중기의 무신이다."], "subject_start": [0], "subject_end": [3], "subject_type": ["PER"],
           "object_start": [5], "object_end": [7], "object_type": ["LOC"]}


def re_records(frame: pd.DataFrame, max_batch_size: int) -> list[dict[str, Any]]:
    """Flat RE columns -> ``{"text", "subject": {start, end, type}, "object": {...}}`` (end exclusive),
    offsets checked against the text."""
    check_batch(frame, COLUMNS, max_batch_size)
    columns = {c: frame[c].tolist() for c in COLUMNS}
    records = []
    for row in range(len(frame)):
        text = text_field(columns["text"][row], row)
        record: dict[str, Any] = {"text": text}
        for side in SIDES:
            start = offset_field(columns[f"{side}_start"][row], f"{side}_start", row)
            end = offset_field(columns[f"{side}_end"][row], f"{side}_end", row)
            etype = type_field(columns[f"{side}_type"][row], f"{side}_type", row)
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


class ReServing(TaskServing):
    columns = COLUMNS

    def input_example(self) -> pd.DataFrame:
        return pd.DataFrame(EXAMPLE)

    def signature(self, labels: dict[str, Any]):
        """Columns typed ``Any``: the model checks the values and names the field in its 400."""
        from mlflow.models import ModelSignature
        from mlflow.types.schema import AnyType, ColSpec, Object, Property, Schema

        probs = Object([Property(label, "double") for label in labels["labels"]])
        return ModelSignature(Schema([ColSpec(AnyType(), c) for c in COLUMNS]),
                              Schema([ColSpec("string", "label"), ColSpec("double", "score"), ColSpec(probs, "probs")]))

    def metadata(self, labels: dict[str, Any]) -> dict[str, Any]:
        return {"labels": labels["labels"]}

    def load_predictor(self, checkpoint: Checkpoint, device: str):
        from spanfirst.re.predictor import RePredictor

        return RePredictor.from_checkpoint(checkpoint, device)

    def predict(self, predictor: Any, frame: pd.DataFrame, params: dict[str, Any] | None, max_batch_size: int,
                batch_size: int) -> pd.DataFrame:
        out = predictor.predict(re_records(frame, max_batch_size), batch_size)
        return pd.DataFrame({"label": [o["label"] for o in out], "score": [o["score"] for o in out],
                             "probs": [o["probs"] for o in out]})

    def predict_file(self, model: Any, source: Path, out: Path, options: dict[str, Any]) -> int:
        """The submission CSV ``id, pred_label, probs`` for every row of a KLUE-RE CSV or RE JSONL
        file (labels optional)."""
        from tqdm import tqdm

        from spanfirst.re.predictor import write_submission
        from spanfirst.re.reader import read_re_as_configured

        predictor = model.impl.predictor
        examples = read_re_as_configured(source, predictor.cfg.data, "auto", require_label=False).examples
        probs = np.zeros((len(examples), len(predictor.labels)))
        with tqdm(total=len(examples), unit="row") as bar:
            for lo in range(0, len(examples), model.max_batch_size):
                part = examples[lo : lo + model.max_batch_size]
                frame = pd.DataFrame([{"text": ex.text, **{f"{side}_{key}": getattr(getattr(ex, side), key)
                                                           for side in SIDES for key in ("start", "end", "type")}}
                                      for ex in part])
                rows = model.predict(frame)["probs"]
                probs[lo : lo + len(part)] = [[row[label] for label in predictor.labels] for row in rows]
                bar.update(len(part))
        write_submission(out, [ex.id for ex in examples], probs, predictor.labels)
        return len(examples)
