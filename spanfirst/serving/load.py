"""Load the serving model from a registry URI, an MLflow model folder or a checkpoint folder.

Batch prediction (``pipelines/predict.py``) runs exactly what ``mlflow models serve`` runs: the
same :class:`~spanfirst.serving.pyfunc_model.SpanfirstModel`, through MLflow's pyfunc loader
(schema checks included) when the source is an MLflow model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass
class ServingModel:
    impl: Any  # the SpanfirstModel (task, predictor, batch limits)
    predict: Callable[..., pd.DataFrame]  # (frame, params=None) -> frame
    source: str

    @property
    def task(self) -> str:
        return self.impl.task

    @property
    def max_batch_size(self) -> int:
        return self.impl.max_batch_size


def is_mlflow_model(source: str) -> bool:
    """A model URI (``models:/``, ``runs:/``, ``s3://``, ...) or a folder holding an MLmodel file."""
    return re.match(r"^[A-Za-z][\w+.-]+:/", source) is not None or (Path(source) / "MLmodel").is_file()


def load_serving_model(source: str | Path, model_config: dict[str, Any] | None = None,
                       tracking_uri: str | None = None) -> ServingModel:
    """``models:/name@alias``, ``runs:/...``, an MLflow model folder, or a checkpoint folder.

    ``model_config`` overrides the logged one (``batch_size``, ``max_batch_size``, ``device``)."""
    source = str(source)
    if not is_mlflow_model(source):
        from spanfirst.checkpoint import is_checkpoint
        from spanfirst.serving.log_model import load_from_checkpoint
        from spanfirst.serving.settings import env_overrides

        if not is_checkpoint(source):
            raise FileNotFoundError(f"{source}: neither a spanfirst checkpoint, an MLflow model folder (no MLmodel) "
                                    "nor a model URI such as models:/NAME@champion")
        impl = load_from_checkpoint(source, {**env_overrides(), **(model_config or {})})
        return ServingModel(impl, lambda frame, params=None: impl.predict(None, frame, params), source)
    import mlflow

    if tracking_uri:
        from spanfirst.tracking import resolve_tracking_uri, use_uri

        with use_uri(resolve_tracking_uri(tracking_uri)):
            model = mlflow.pyfunc.load_model(source, model_config=model_config)
    else:
        model = mlflow.pyfunc.load_model(source, model_config=model_config)
    return ServingModel(model.unwrap_python_model(), model.predict, source)
