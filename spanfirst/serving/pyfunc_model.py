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
``max_batch_size`` rows per call, ``max_text_chars`` characters per text and ``max_request_bytes``
per request body (checked before MLflow parses it: :mod:`spanfirst.serving.request_guard`), ``batch_size`` rows
per forward pass, on ``device``, the encoder run by ``runtime`` (the checkpoint holds the ONNX
file of an ``onnx`` / ``onnx-int8`` registration). A
GLiNER-style NER model takes the entity types to look for as the ``types`` param.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

from spanfirst import checkpoint as ckpt
from spanfirst.serving.inputs import BadRequest, as_frame, check_text_lengths
from spanfirst.serving import request_guard
from spanfirst.serving.onnx_runtime import use_runtime
from spanfirst.serving.settings import ServingSettings
from spanfirst.tasks import get_task


class SpanfirstModel(PythonModel):
    """Any task's checkpoint behind the pyfunc interface; the task's serving spec does the rest."""

    def load_context(self, context) -> None:  # noqa: ANN001 (mlflow's PythonModelContext)
        checkpoint = ckpt.read(Path(context.artifacts["checkpoint"]))
        self.settings = settings = ServingSettings.from_config(getattr(context, "model_config", None))
        request_guard.install()
        self.batch_size, self.max_batch_size, device = settings.batch_size, settings.max_batch_size, settings.device
        self.max_text_chars = settings.max_text_chars
        self.task = checkpoint.task
        self.serving = get_task(self.task).serving()
        self.predictor = self.serving.load_predictor(checkpoint, device)
        self.runtime = settings.runtime
        use_runtime(self.predictor.model, checkpoint, settings.runtime, device)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:  # noqa: ANN001
        try:
            frame = as_frame(model_input, self.serving.columns)
            check_text_lengths(frame, self.max_text_chars)
            return self.serving.predict(self.predictor, frame, params, self.max_batch_size, self.batch_size)
        except BadRequest as err:
            raise MlflowException.invalid_parameter_value(str(err)) from None


mlflow.models.set_model(SpanfirstModel())
