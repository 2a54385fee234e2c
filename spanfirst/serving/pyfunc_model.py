"""MLflow "models from code" entry point for spanfirst checkpoints.

MLflow copies this file into the logged model and executes it at load time, so no Python
object is pickled: the model is this code plus the checkpoint directory (safetensors weights,
config.yaml, labels.json) logged as the ``checkpoint`` artifact. Loading needs the
``spanfirst`` package installed (``mlflow models serve --env-manager local``).

Input: a table with a ``text`` column (NER), or ``text``, ``subject_start``, ``subject_end``,
``subject_type``, ``object_start``, ``object_end``, ``object_type`` (RE, character offsets, end
exclusive). Output: one row per input row: ``entities`` (NER: ``start``, ``end``, ``type``,
``score``, ``text``), or ``label``, ``score`` and ``probs`` (RE: every label's probability, keys
in the checkpoint's label order). A bad request raises MLflow's ``INVALID_PARAMETER_VALUE``
(HTTP 400) naming the field. ``model_config`` (:mod:`spanfirst.serving.settings`): at most
``max_batch_size`` rows per call, ``batch_size`` rows per forward pass, on ``device``. A
GLiNER-style NER model takes the entity types to look for as the ``types`` param.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

from spanfirst.serving.inputs import BadRequest, as_frame, ner_texts, ner_types, re_records
from spanfirst.serving.settings import ServingSettings


class SpanfirstModel(PythonModel):
    def load_context(self, context) -> None:  # noqa: ANN001 (mlflow's PythonModelContext)
        path = Path(context.artifacts["checkpoint"])
        settings = ServingSettings.from_config(getattr(context, "model_config", None))
        self.batch_size, self.max_batch_size, device = settings.batch_size, settings.max_batch_size, settings.device
        self.task = json.loads((path / "labels.json").read_text(encoding="utf-8"))["task"]
        if self.task == "ner":
            from spanfirst.ner.predictor import NerPredictor

            self.predictor = NerPredictor.load(path, device)
        elif self.task == "re":
            from spanfirst.re.predictor import RePredictor

            self.predictor = RePredictor.load(path, device)
        else:
            raise ValueError(f"{path}: unknown task '{self.task}'")

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:  # noqa: ANN001
        try:
            frame = as_frame(model_input, self.task)
            if self.task == "ner":
                texts = ner_texts(frame, self.max_batch_size)
                types = ner_types(params, self.predictor)
                return pd.DataFrame({"entities": self.predictor.predict(texts, self.batch_size, types)})
            out = self.predictor.predict(re_records(frame, self.max_batch_size), self.batch_size)
        except BadRequest as err:
            raise MlflowException.invalid_parameter_value(str(err)) from None
        return pd.DataFrame({"label": [o["label"] for o in out], "score": [o["score"] for o in out],
                             "probs": [o["probs"] for o in out]})


mlflow.models.set_model(SpanfirstModel())
