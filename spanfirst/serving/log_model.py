"""Log a spanfirst checkpoint as an MLflow pyfunc model (models from code) and register it."""

from __future__ import annotations

import importlib.metadata as md
import json
from pathlib import Path
from typing import Any

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
NER_EXAMPLE = ["가수 김흥국이 왕십리에서 콘서트를 열었다.", "삼성전자는 2024년 1월 새 제품을 발표했다."]
RE_EXAMPLE = {"text": ["이순신은 조선 중기의 무신이다."], "subject_start": [0], "subject_end": [3], "subject_type": ["PER"],
              "object_start": [5], "object_end": [7], "object_type": ["LOC"]}
_REQUIREMENTS = ("torch", "transformers", "tokenizers", "safetensors", "peft", "pandas", "pydantic", "pyyaml", "mlflow")


def input_example(task: str):
    import pandas as pd

    return pd.DataFrame({"text": NER_EXAMPLE} if task == "ner" else RE_EXAMPLE)


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
                         name: str = "model") -> tuple[Any, Any | None]:
    """Log ``checkpoint_dir`` as a pyfunc model in the active MLflow run; register it if a name is given.

    The signature is inferred from the input example and the model's real output on it, so it
    matches what ``mlflow models serve`` returns. Returns (ModelInfo, ModelVersion or None).
    """
    import mlflow
    from mlflow.models import infer_signature

    checkpoint_dir = Path(checkpoint_dir)
    labels = json.loads((checkpoint_dir / "labels.json").read_text(encoding="utf-8"))
    if labels.get("task") != task:
        raise ValueError(f"{checkpoint_dir}: a '{labels.get('task')}' checkpoint, not a '{task}' one")
    example = input_example(task)
    output = _predict_locally(checkpoint_dir, example)
    info = mlflow.pyfunc.log_model(
        name=name, python_model=str(MODEL_CODE), artifacts={"checkpoint": str(checkpoint_dir)},
        signature=infer_signature(example, output), input_example=example,
        pip_requirements=requirements(),
    )
    version = mlflow.register_model(info.model_uri, registered_name) if registered_name else None
    return info, version


def _predict_locally(checkpoint_dir: Path, example):
    """Run the model code on the example exactly as a server would (also a smoke test of the files)."""
    from spanfirst.serving.pyfunc_model import SpanfirstModel

    class _Ctx:
        artifacts = {"checkpoint": str(checkpoint_dir)}

    model = SpanfirstModel()
    model.load_context(_Ctx())
    return model.predict(_Ctx(), example)
