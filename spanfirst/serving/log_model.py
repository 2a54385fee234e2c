"""Log a spanfirst checkpoint as an MLflow pyfunc model (models from code) and register it."""

from __future__ import annotations

import importlib.metadata as md
import json
from pathlib import Path
from typing import Any

from spanfirst.serving.inputs import NER_COLUMNS, RE_COLUMNS
from spanfirst.serving.settings import DEFAULT_CONFIG

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
NER_EXAMPLE = ["가수 김흥국이 왕십리에서 콘서트를 열었다.", "삼성전자는 2024년 1월 새 제품을 발표했다."]
RE_EXAMPLE = {"text": ["이순신은 조선 중기의 무신이다."], "subject_start": [0], "subject_end": [3], "subject_type": ["PER"],
              "object_start": [5], "object_end": [7], "object_type": ["LOC"]}
_REQUIREMENTS = ("torch", "transformers", "tokenizers", "safetensors", "peft", "pandas", "pydantic", "pyyaml", "mlflow")


def input_example(task: str):
    import pandas as pd

    return pd.DataFrame({"text": NER_EXAMPLE} if task == "ner" else RE_EXAMPLE)


def signature(task: str, labels: dict[str, Any]):
    """The request/response schema, declared rather than inferred (an untrained model's output on
    the example may hold no entity to infer from).

    A DataFrame (column) signature, so the server accepts ``inputs``, ``dataframe_split`` and
    ``dataframe_records`` requests alike. The columns are required but typed ``Any``: with
    ``inputs`` MLflow casts values to a declared type before the model sees them (``null`` becomes
    the text "None", 3.7 the offset 3), so the types are checked by the model itself
    (:mod:`spanfirst.serving.inputs`), which names the field in its 400 answer."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, Array, ColSpec, Object, ParamSchema, ParamSpec, Property, Schema

    if task == "ner":
        entity = Object([Property("start", "long"), Property("end", "long"), Property("type", "string"),
                         Property("score", "double"), Property("text", "string")])
        # A GLiNER-style model reads its types as text, so a request may name others
        # ({"params": {"types": [...]}}); declared for every head so a fixed-type model answers 400
        # instead of MLflow silently dropping an undeclared param.
        params = ParamSchema([ParamSpec("types", "string", [], shape=(-1,))])
        return ModelSignature(Schema([ColSpec(AnyType(), c) for c in NER_COLUMNS]),
                              Schema([ColSpec(Array(entity), "entities")]), params)
    inputs = Schema([ColSpec(AnyType(), c) for c in RE_COLUMNS])
    probs = Object([Property(label, "double") for label in labels["labels"]])
    return ModelSignature(inputs, Schema([ColSpec("string", "label"), ColSpec("double", "score"),
                                          ColSpec(probs, "probs")]))


def requirements() -> list[str]:
    """Pinned to this environment; given explicitly because inferring them loads the model again."""
    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={md.version(name)}")
        except md.PackageNotFoundError:
            out.append(name)
    return out


def log_checkpoint_model(checkpoint_dir: str | Path, task: str, registered_name: str | None = None,
                         name: str = "model", model_config: dict[str, Any] | None = None) -> tuple[Any, Any | None]:
    """Log ``checkpoint_dir`` as a pyfunc model in the active MLflow run; register it if a name is given.

    ``model_config`` (``batch_size``, ``max_batch_size``) defaults to
    :data:`~spanfirst.serving.settings.DEFAULT_CONFIG`. The model is run once on the input
    example before logging, through the serving class, so a broken checkpoint fails here.
    Returns (ModelInfo, ModelVersion or None).
    """
    import mlflow

    checkpoint_dir = Path(checkpoint_dir)
    labels = json.loads((checkpoint_dir / "labels.json").read_text(encoding="utf-8"))
    if labels.get("task") != task:
        raise ValueError(f"{checkpoint_dir}: a '{labels.get('task')}' checkpoint, not a '{task}' one")
    config = {**DEFAULT_CONFIG, **(model_config or {})}
    example = input_example(task)
    load_from_checkpoint(checkpoint_dir, config).predict(None, example)
    label_order = {"types": labels["types"]} if task == "ner" else {"labels": labels["labels"]}
    info = mlflow.pyfunc.log_model(
        name=name, python_model=str(MODEL_CODE), artifacts={"checkpoint": str(checkpoint_dir)},
        signature=signature(task, labels), input_example=example, model_config=config,
        metadata={"spanfirst_task": task, **label_order}, pip_requirements=requirements(),
    )
    version = mlflow.register_model(info.model_uri, registered_name) if registered_name else None
    return info, version


def load_from_checkpoint(checkpoint_dir: str | Path, model_config: dict[str, Any] | None = None):
    """The serving model class loaded straight from a checkpoint folder (no MLflow model needed)."""
    from spanfirst.serving.pyfunc_model import SpanfirstModel

    class _Context:
        artifacts = {"checkpoint": str(checkpoint_dir)}

    _Context.model_config = {**DEFAULT_CONFIG, **(model_config or {})}
    model = SpanfirstModel()
    model.load_context(_Context())
    return model
