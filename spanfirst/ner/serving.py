"""What serving and batch prediction need from the NER task.

Request: a ``text`` column (one text per row). Response: ``entities`` per row, each
``{start, end, type, score, text}`` (character offsets, end exclusive). A GLiNER-style model
takes the entity types to look for as the ``types`` param.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spanfirst.checkpoint import Checkpoint
from spanfirst.serving.inputs import BadRequest, check_batch, kind, text_field
from spanfirst.tasks import TaskServing

COLUMNS = ("text",)
EXAMPLE = ["가수 김흥국이 왕십리에서 콘서트를 열었다.", "삼성전자는 2024년 1월 새 제품을 발표했다."]


def ner_texts(frame: pd.DataFrame, max_batch_size: int) -> list[str]:
    """The ``text`` column, every value a non-empty string.

    ``{"inputs": ["a", "b"]}`` and ``{"inputs": {"text": ["a", "b"]}}`` reach the model as one row
    holding the list (MLflow's reading of a dict of string lists): that list is the column."""
    if "text" in frame.columns and len(frame) == 1 and isinstance(frame["text"].iloc[0], (list, tuple, np.ndarray)):
        frame = pd.DataFrame({"text": list(frame["text"].iloc[0])})
    check_batch(frame, COLUMNS, max_batch_size)
    return [text_field(v, row) for row, v in enumerate(frame["text"].tolist())]


def ner_types(params: dict[str, Any] | None, predictor: Any) -> list[str] | None:
    """The ``types`` param of an NER request: entity types to look for (GLiNER-style models only);
    None when absent or empty (the model's own types)."""
    types = (params or {}).get("types")
    if types is None or (hasattr(types, "__len__") and len(types) == 0):
        return None
    if isinstance(types, str) or not isinstance(types, (list, tuple, np.ndarray)):
        raise BadRequest(f"params.types: expected a list of type names, got {kind(types)}")
    types = list(types)
    if not predictor.open_types:
        raise BadRequest(f"params.types: this model predicts a fixed type set {predictor.types}; "
                         "only a gliner-head model takes entity types per request")
    for k, t in enumerate(types):
        if not isinstance(t, str) or not t.strip():
            raise BadRequest(f"params.types[{k}]: expected a non-empty type name, got {kind(t)}")
    if len(set(types)) != len(types):
        raise BadRequest("params.types: type names must be distinct")
    return types


def read_texts(path: Path, column: str = "text") -> list[str]:
    """Texts from .txt (a line each), .jsonl (``column`` field), .csv (``column`` column), or an
    annotation tool's export (every task's, record's or brat ``.txt`` file's text)."""
    from spanfirst.data.annotation_tools import sniff, texts_of
    from spanfirst.data.readers import iter_jsonl
    from spanfirst.errors import DataError

    tool = sniff(path)
    if tool is not None:
        return texts_of(path, tool, None if column == "text" else column)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        if column not in frame.columns:
            raise DataError(str(path), 1, column, f"no '{column}' column (columns: {list(frame.columns)})")
        return frame[column].tolist()
    if suffix in (".jsonl", ".json"):
        texts = []
        for n, record in iter_jsonl(path):
            if not isinstance(record.get(column), str):
                raise DataError(str(path), n, column, "missing or not a string")
            texts.append(record[column])
        return texts
    with path.open(encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


class NerServing(TaskServing):
    columns = COLUMNS

    def input_example(self) -> pd.DataFrame:
        return pd.DataFrame({"text": EXAMPLE})

    def signature(self, labels: dict[str, Any]):
        """Declared, not inferred (an untrained model's output on the example may hold no entity).
        Columns typed ``Any``: the model checks the values itself and names the field in its 400
        (with ``inputs`` MLflow would otherwise cast ``null`` to the text "None")."""
        from mlflow.models import ModelSignature
        from mlflow.types.schema import AnyType, Array, ColSpec, Object, ParamSchema, ParamSpec, Property, Schema

        entity = Object([Property("start", "long"), Property("end", "long"), Property("type", "string"),
                         Property("score", "double"), Property("text", "string")])
        # A GLiNER-style model reads its types as text, so a request may name others
        # ({"params": {"types": [...]}}); declared for every head so a fixed-type model answers 400
        # instead of MLflow silently dropping an undeclared param.
        params = ParamSchema([ParamSpec("types", "string", [], shape=(-1,))])
        return ModelSignature(Schema([ColSpec(AnyType(), c) for c in COLUMNS]),
                              Schema([ColSpec(Array(entity), "entities")]), params)

    def metadata(self, labels: dict[str, Any]) -> dict[str, Any]:
        return {"types": labels["types"]}

    def load_predictor(self, checkpoint: Checkpoint, device: str):
        from spanfirst.ner.predictor import NerPredictor

        return NerPredictor.from_checkpoint(checkpoint, device)

    def predict(self, predictor: Any, frame: pd.DataFrame, params: dict[str, Any] | None, max_batch_size: int,
                batch_size: int) -> pd.DataFrame:
        texts = ner_texts(frame, max_batch_size)
        types = ner_types(params, predictor)
        return pd.DataFrame({"entities": predictor.predict(texts, batch_size, types)})

    def predict_file(self, model: Any, source: Path, out: Path, options: dict[str, Any]) -> int:
        """The entities of every text of ``source`` (.txt a line each, .jsonl/.csv its
        ``text_column``, an annotation tool's export), in input order: JSON lines ``{"text",
        "entities"}``, or (``output_format``) a doccano / Label Studio import file
        (:mod:`spanfirst.data.tool_imports`). Blank texts get no entities and are not sent to the
        model. ``types``: the entity types to look for (GLiNER-style models only)."""
        from tqdm import tqdm

        from spanfirst.data.tool_imports import PredictionWriter

        texts = read_texts(source, options.get("text_column") or "text")
        types = options.get("types")
        params = {"types": types} if types else None
        with out.open("w", encoding="utf-8") as f, tqdm(total=len(texts), unit="text") as bar:
            writer = PredictionWriter(f, options.get("output_format") or "jsonl", options.get("model_version", ""),
                                      options.get("offset_unit"))
            for lo in range(0, len(texts), model.max_batch_size):
                part = texts[lo : lo + model.max_batch_size]
                filled = [t for t in part if t.strip()]
                found = iter(model.predict(pd.DataFrame({"text": filled}), params)["entities"]) if filled else iter(())
                for text in part:
                    writer.write(text, [dict(e) for e in next(found)] if text.strip() else [])
                bar.update(len(part))
            writer.close()
        return len(texts)
