"""MLflow "models from code" entry point for spanfirst checkpoints.

MLflow copies this file into the logged model and executes it at load time, so no Python
object is pickled: the model is this code plus the checkpoint directory (safetensors weights,
config.yaml, labels.json) logged as the ``checkpoint`` artifact. Loading needs the
``spanfirst`` package installed (``mlflow models serve --env-manager local``).

Input: a DataFrame with a ``text`` column (NER), or ``text``, ``subject_start``,
``subject_end``, ``subject_type``, ``object_start``, ``object_end``, ``object_type`` (RE,
character offsets, end exclusive). Output: a DataFrame with one row per input row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

RE_COLUMNS = ("text", "subject_start", "subject_end", "subject_type", "object_start", "object_end", "object_type")


def re_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Flat RE columns -> the ``{"text", "subject": {...}, "object": {...}}`` records RePredictor reads."""
    missing = [c for c in RE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"RE input lacks columns {missing}; expected {list(RE_COLUMNS)}")
    records = []
    for row in frame.itertuples(index=False):
        r = row._asdict()
        records.append({"text": str(r["text"]),
                        **{side: {"start": int(r[f"{side}_start"]), "end": int(r[f"{side}_end"]),
                                  "type": str(r[f"{side}_type"]),
                                  "word": str(r["text"])[int(r[f"{side}_start"]):int(r[f"{side}_end"])]}
                           for side in ("subject", "object")}})
    return records


class SpanfirstModel(PythonModel):
    def load_context(self, context) -> None:  # noqa: ANN001 (mlflow's PythonModelContext)
        path = Path(context.artifacts["checkpoint"])
        self.task = json.loads((path / "labels.json").read_text(encoding="utf-8"))["task"]
        if self.task == "ner":
            from spanfirst.ner.predictor import NerPredictor

            self.predictor = NerPredictor.load(path)
        elif self.task == "re":
            from spanfirst.re.predictor import RePredictor

            self.predictor = RePredictor.load(path)
        else:
            raise ValueError(f"{path}: unknown task '{self.task}'")

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:  # noqa: ANN001
        frame = pd.DataFrame(model_input)
        if self.task == "ner":
            if "text" not in frame.columns:
                raise ValueError("NER input needs a 'text' column")
            return pd.DataFrame({"entities": self.predictor.predict([str(t) for t in frame["text"]])})
        out = self.predictor.predict(re_records(frame))
        return pd.DataFrame({"label": [o["label"] for o in out], "score": [o["score"] for o in out]})


mlflow.models.set_model(SpanfirstModel())
