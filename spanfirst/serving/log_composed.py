"""Log (or save) an NER checkpoint and an RE checkpoint as one composed pyfunc model, and fetch a
part's checkpoint from a model URI (``models:/spanfirst-ner@champion``) or an MLflow model folder."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spanfirst import checkpoint as ckpt
from spanfirst.serving.log_model import requirements
from spanfirst.serving.settings import DEFAULT_CONFIG

MODEL_CODE = Path(__file__).with_name("composed_model.py")
EXAMPLE = ["가수 김흥국이 왕십리에서 콘서트를 열었다.", "삼성전자는 2024년 1월 새 제품을 발표했다."]


def part_checkpoint(source: str, task: str, into: Path) -> Path:
    """A local checkpoint folder of ``task`` from a checkpoint folder, an MLflow model folder or a
    model URI (downloaded into ``into``)."""
    from spanfirst.serving.load import is_mlflow_model

    if not is_mlflow_model(source):
        ckpt.read(source, task=task)  # a checkpoint of the right task, or a clear error
        return Path(source)
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(into / task)))
    artifacts = mlflow.models.Model.load(str(local)).flavors.get("python_function", {}).get("artifacts", {})
    if "checkpoint" not in artifacts:
        raise ValueError(f"{source}: not a spanfirst {task} model (its MLmodel names no checkpoint artifact)")
    found = local / artifacts["checkpoint"]["path"]
    ckpt.read(found, task=task)
    return found


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, Array, ColSpec, Object, ParamSchema, ParamSpec, Property, Schema

    entity = Object([Property("start", "long"), Property("end", "long"), Property("type", "string"),
                     Property("score", "double"), Property("text", "string")])
    relation = Object([Property("subject", "long"), Property("object", "long"), Property("label", "string"),
                       Property("score", "double")])
    params = ParamSchema([ParamSpec("relations", "boolean", True), ParamSpec("min_relation_score", "double", 0.0)])
    return ModelSignature(Schema([ColSpec(AnyType(), "text")]),
                          Schema([ColSpec("string", "text"), ColSpec(Array(entity), "entities"),
                                  ColSpec(Array(relation), "relations")]), params)


def load_composed(ner_dir: str | Path, re_dir: str | Path, model_config: dict[str, Any] | None = None):
    """The composed serving model straight from two checkpoint folders."""
    from spanfirst.serving.composed_model import ComposedModel

    class _Context:
        artifacts = {"ner": str(ner_dir), "re": str(re_dir)}

    _Context.model_config = {**DEFAULT_CONFIG, **(model_config or {})}
    model = ComposedModel()
    model.load_context(_Context())
    return model


@contextmanager
def _model_kwargs(ner_dir: Path, re_dir: Path, model_config: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    """What save_model / log_model take, the parts' model files alone (no training state) in a
    temporary folder; the composed model is run once on the example first, so a broken part fails here."""
    import pandas as pd

    config = {**DEFAULT_CONFIG, **(model_config or {})}
    load_composed(ner_dir, re_dir, config).predict(None, pd.DataFrame({"text": EXAMPLE}))
    with tempfile.TemporaryDirectory(prefix="spanfirst-composed-") as tmp:
        clean = {task: str(ckpt.copy_model(folder, Path(tmp) / task)) for task, folder in (("ner", ner_dir), ("re", re_dir))}
        yield {"python_model": str(MODEL_CODE), "artifacts": clean, "signature": signature(),
               "input_example": pd.DataFrame({"text": EXAMPLE}), "model_config": config,
               "metadata": {"spanfirst_task": "extract"}, "pip_requirements": requirements()}


def save_composed_model(ner_dir: Path, re_dir: Path, path: Path, model_config: dict[str, Any] | None = None) -> Path:
    """An MLflow model folder (``mlflow models serve -m PATH``, ``pipelines/predict.py PATH``)."""
    import mlflow

    with _model_kwargs(ner_dir, re_dir, model_config) as kwargs:
        mlflow.pyfunc.save_model(str(path), **kwargs)
    return path


def log_composed_model(ner_dir: Path, re_dir: Path, registered_name: str | None = None,
                       model_config: dict[str, Any] | None = None) -> tuple[Any, Any | None]:
    """Log in the active run; register as ``registered_name`` if given. (ModelInfo, ModelVersion or None)."""
    import mlflow

    with _model_kwargs(ner_dir, re_dir, model_config) as kwargs:
        info = mlflow.pyfunc.log_model(name="model", **kwargs)
    version = mlflow.register_model(info.model_uri, registered_name) if registered_name else None
    return info, version
