"""Log a spanfirst checkpoint as an MLflow pyfunc model (models from code) and register it."""

from __future__ import annotations

import importlib.metadata as md
import tempfile
from pathlib import Path
from typing import Any

from spanfirst import checkpoint as ckpt
from spanfirst.serving.settings import DEFAULT_CONFIG
from spanfirst.tasks import get_task

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
_REQUIREMENTS = ("torch", "transformers", "tokenizers", "safetensors", "peft", "pandas", "pydantic", "pyyaml", "mlflow")


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

    if any(p.name not in ckpt.MODEL_FILES for p in Path(checkpoint_dir).iterdir()):
        # a trial's checkpoint may also hold its training state (gigabytes at base size) and a
        # storage marker: the model logs the model files alone
        with tempfile.TemporaryDirectory(prefix="spanfirst-model-") as tmp:
            clean = ckpt.copy_model(checkpoint_dir, Path(tmp) / "checkpoint")
            return log_checkpoint_model(clean, task, registered_name, name, model_config)
    checkpoint = ckpt.read(checkpoint_dir, task=task)
    serving = get_task(task).serving()
    config = {**DEFAULT_CONFIG, **(model_config or {})}
    example = serving.input_example()
    load_from_checkpoint(checkpoint_dir, config).predict(None, example)
    info = mlflow.pyfunc.log_model(
        name=name, python_model=str(MODEL_CODE), artifacts={"checkpoint": str(checkpoint_dir)},
        signature=serving.signature(checkpoint.labels), input_example=example, model_config=config,
        metadata={"spanfirst_task": task, **serving.metadata(checkpoint.labels)}, pip_requirements=requirements(),
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
