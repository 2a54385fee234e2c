"""Log a spanfirst checkpoint as an MLflow pyfunc model (models from code) and register it."""

from __future__ import annotations

import importlib.metadata as md
import tempfile
from pathlib import Path
from typing import Any

from spanfirst import checkpoint as ckpt
from spanfirst.serving.onnx_runtime import check_runtime
from spanfirst.serving.settings import DEFAULT_CONFIG
from spanfirst.tasks import get_task

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
_REQUIREMENTS = ("torch", "transformers", "tokenizers", "safetensors", "peft", "pandas", "pydantic", "pyyaml", "mlflow")


def requirements(runtime: str = "torch") -> list[str]:
    """Pinned to this environment; given explicitly because inferring them loads the model again."""
    out = []
    for name in (*_REQUIREMENTS, *(("onnxruntime",) if runtime != "torch" else ())):
        try:
            out.append(f"{name}=={md.version(name)}")
        except md.PackageNotFoundError:
            out.append(name)
    return out


def log_checkpoint_model(checkpoint_dir: str | Path, task: str, registered_name: str | None = None,
                         name: str = "model", model_config: dict[str, Any] | None = None) -> tuple[Any, Any | None]:
    """Log ``checkpoint_dir`` as a pyfunc model in the active MLflow run; register it if a name is given.

    ``model_config`` (``batch_size``, ``max_batch_size``, ``runtime``, ...) defaults to
    :data:`~spanfirst.serving.settings.DEFAULT_CONFIG`, the runtime to the checkpoint's
    ``serving.runtime``. An ONNX runtime's encoder is exported into the logged copy of the
    checkpoint and checked against PyTorch on dev first (:mod:`spanfirst.serving.runtime_parity`:
    both scores go into the run; a runtime that moves the score too much raises
    :class:`RuntimeRefused` and nothing is logged). The model is run once on the input example
    before logging, through the serving class, so a broken checkpoint fails here.
    Returns (ModelInfo, ModelVersion or None).
    """
    import mlflow

    checkpoint = ckpt.read(checkpoint_dir, task=task)
    config = {**DEFAULT_CONFIG, "runtime": checkpoint.cfg.serving.runtime, **(model_config or {})}
    runtime = check_runtime(config["runtime"])
    export = runtime != "torch" and not checkpoint.onnx_encoder(runtime).is_file()
    with tempfile.TemporaryDirectory(prefix="spanfirst-model-") as tmp:
        if export or any(p.name not in ckpt.MODEL_FILES for p in checkpoint.path.iterdir()):
            # a trial's checkpoint may also hold its training state (gigabytes at base size) and a
            # storage marker: the model logs the model files alone, and an export goes into the copy
            checkpoint = ckpt.read(ckpt.copy_model(checkpoint.path, Path(tmp) / "checkpoint"), task=task)
        if runtime != "torch":
            check_against_torch(checkpoint, runtime, export)
        serving = get_task(task).serving()
        example = serving.input_example()
        load_from_checkpoint(checkpoint.path, config).predict(None, example)
        info = mlflow.pyfunc.log_model(
            name=name, python_model=str(MODEL_CODE), artifacts={"checkpoint": str(checkpoint.path)},
            signature=serving.signature(checkpoint.labels), input_example=example, model_config=config,
            metadata={"spanfirst_task": task, "spanfirst_runtime": runtime, **serving.metadata(checkpoint.labels)},
            pip_requirements=requirements(runtime),
        )
    version = mlflow.register_model(info.model_uri, registered_name) if registered_name else None
    return info, version


def check_against_torch(checkpoint: ckpt.Checkpoint, runtime: str, export: bool) -> None:
    """Export the encoder for ``runtime`` (when the checkpoint has none yet), score dev with both
    runtimes into the active run, and refuse a runtime that moves the score too much."""
    import mlflow

    from spanfirst.serving.onnx_runtime import export_encoder
    from spanfirst.serving.runtime_parity import RuntimeRefused, measure_parity, refusal

    if export:
        print(f"exporting the encoder for runtime {runtime} ...", flush=True)
        export_encoder(checkpoint, runtime)
    print(f"checking runtime {runtime} against torch on dev ...", flush=True)
    parity = measure_parity(checkpoint, runtime, checkpoint.cfg.serving.max_f1_change)
    mlflow.log_metrics(parity.metrics())
    print(parity.summary(), flush=True)
    if not parity.accepted:
        raise RuntimeRefused(refusal(parity))


def load_from_checkpoint(checkpoint_dir: str | Path, model_config: dict[str, Any] | None = None):
    """The serving model class loaded straight from a checkpoint folder (no MLflow model needed)."""
    from spanfirst.serving.pyfunc_model import SpanfirstModel

    class _Context:
        artifacts = {"checkpoint": str(checkpoint_dir)}

    _Context.model_config = {**DEFAULT_CONFIG, **(model_config or {})}
    model = SpanfirstModel()
    model.load_context(_Context())
    return model
