"""MLflow "models from code" entry point of a composed NER + RE model: raw text in, entities and the
relations between them out (:class:`~spanfirst.extraction.chain.Extractor`).

The two checkpoints are logged as the ``ner`` and ``re`` artifacts; nothing is pickled. Input: a
``text`` column, as for NER. Output per row: ``text``, ``entities`` (``start``, ``end``, ``type``,
``score``, ``text``; character offsets, end exclusive) and ``relations`` (``subject`` and ``object``
index ``entities``; ``label``, ``score``). Params: ``relations`` (false: entities only) and
``min_relation_score``. The NER limits apply (rows, characters per text, request bytes; a bad
request is a 400 naming the field).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

from spanfirst.serving import request_guard
from spanfirst.serving.inputs import BadRequest, as_frame, check_text_lengths, kind
from spanfirst.serving.settings import ServingSettings

TASK = "extract"


def request_options(params: dict[str, Any] | None) -> tuple[bool, float]:
    """(relations, min_relation_score) of a request's params."""
    params = params or {}
    relations = params.get("relations", True)
    if not isinstance(relations, bool):
        raise BadRequest(f"params.relations: expected true or false, got {kind(relations)}")
    score = params.get("min_relation_score", 0.0)
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
        raise BadRequest(f"params.min_relation_score: expected a number in [0, 1], got {score!r}")
    return relations, float(score)


class ExtractServing:
    """What ``pipelines/predict.py`` needs of a composed model."""

    @staticmethod
    def predict_file(model: Any, source: Path, out: Path, options: dict[str, Any]) -> int:
        """The entities and relations of every text of ``source`` (as NER reads its input): JSON lines
        ``{"text", "entities", "relations"}``, or a doccano / Label Studio import file
        (``output_format``); blank texts get nothing and are not sent to the model."""
        from spanfirst.data.tool_imports import PredictionWriter
        from spanfirst.ner.serving import read_texts

        texts = read_texts(source, options.get("text_column") or "text")
        with out.open("w", encoding="utf-8") as f:
            writer = PredictionWriter(f, options.get("output_format") or "jsonl", options.get("model_version", ""),
                                      options.get("offset_unit"))
            for lo in range(0, len(texts), model.max_batch_size):
                part = texts[lo : lo + model.max_batch_size]
                filled = [t for t in part if t.strip()]
                rows = iter(model.predict(pd.DataFrame({"text": filled})).to_dict("records") if filled else [])
                for text in part:
                    row = next(rows) if text.strip() else {"entities": [], "relations": []}
                    writer.write(text, [dict(e) for e in row["entities"]], [dict(r) for r in row["relations"]])
            writer.close()
        return len(texts)


class ComposedModel(PythonModel):
    task = TASK
    columns = ("text",)
    serving = ExtractServing()

    def load_context(self, context) -> None:  # noqa: ANN001 (mlflow's PythonModelContext)
        from spanfirst import checkpoint as ckpt
        from spanfirst.extraction.chain import Extractor, pair_rules_of
        from spanfirst.ner.predictor import NerPredictor
        from spanfirst.re.predictor import RePredictor

        self.settings = settings = ServingSettings.from_config(getattr(context, "model_config", None))
        request_guard.install()
        self.batch_size, self.max_batch_size = settings.batch_size, settings.max_batch_size
        self.max_text_chars = settings.max_text_chars
        ner = NerPredictor.from_checkpoint(ckpt.read(Path(context.artifacts["ner"]), task="ner"), settings.device)
        re_ckpt = ckpt.read(Path(context.artifacts["re"]), task="re")
        re = RePredictor.from_checkpoint(re_ckpt, settings.device)
        self.extractor = Extractor(ner, re, pair_rules_of(re, re_ckpt.labels))

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:  # noqa: ANN001
        from spanfirst.ner.serving import ner_texts

        try:
            frame = as_frame(model_input, self.columns)
            check_text_lengths(frame, self.max_text_chars)
            texts = ner_texts(frame, self.max_batch_size)
            relations, min_score = request_options(params)
        except BadRequest as err:
            raise MlflowException.invalid_parameter_value(str(err)) from None
        rows = self.extractor.extract(texts, relations, min_score, self.batch_size)
        return pd.DataFrame({key: [r[key] for r in rows] for key in ("text", "entities", "relations")})


mlflow.models.set_model(ComposedModel())
