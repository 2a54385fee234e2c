"""Batch prediction with the serving model (NER or RE, read from the model).

``python pipelines/predict.py MODEL --input FILE --output OUT [--batch-size N] [--tracking-uri URI]``

MODEL is a registered model URI (``models:/spanfirst-ner@champion``), an MLflow model folder, or
a checkpoint folder (``runs/quickstart-ner/best``); all run the same pyfunc model that
``mlflow models serve`` runs. NER input: plain text (one text per line), JSONL with a ``text``
field, or CSV with a ``text`` column; output: one JSON line per text,
``{"text": ..., "entities": [{start, end, type, score, text}]}`` (blank lines get no entities).
RE input: a KLUE-RE CSV or the project's RE JSONL (labels optional); output: the submission
CSV ``id, pred_label, probs`` (probs over all labels in the model's order).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from spanfirst.errors import DataError


def read_texts(path: Path, column: str = "text") -> list[str]:
    """Texts from .txt (a line each), .jsonl (``column`` field) or .csv (``column`` column)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        if column not in frame.columns:
            raise DataError(str(path), 1, column, f"no '{column}' column (columns: {list(frame.columns)})")
        return frame[column].tolist()
    texts = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if suffix in (".jsonl", ".json"):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(str(path), n, None, f"not valid JSON: {err.msg}") from None
                if not isinstance(record, dict) or not isinstance(record.get(column), str):
                    raise DataError(str(path), n, column, "missing or not a string")
                texts.append(record[column])
            else:
                texts.append(line)
    return texts


def predict_ner(model, texts: list[str], out: Path, types: list[str] | None = None) -> int:
    """One JSON line per text, in input order; blank texts are not sent to the model.
    ``types``: the entity types to look for (GLiNER-style models only)."""
    params = {"types": types} if types else None
    with out.open("w", encoding="utf-8") as f, tqdm(total=len(texts), unit="text") as bar:
        for lo in range(0, len(texts), model.max_batch_size):
            part = texts[lo : lo + model.max_batch_size]
            filled = [t for t in part if t.strip()]
            found = iter(model.predict(pd.DataFrame({"text": filled}), params)["entities"]) if filled else iter(())
            for text in part:
                ents = [dict(e) for e in next(found)] if text.strip() else []
                f.write(json.dumps({"text": text, "entities": ents}, ensure_ascii=False) + "\n")
            bar.update(len(part))
    return len(texts)


def predict_re(model, data: Path, out: Path) -> int:
    """The submission CSV for every row of an RE file."""
    from spanfirst.re.predictor import write_submission
    from spanfirst.re.reader import read_re

    predictor = model.impl.predictor
    examples = read_re(data, "auto", on_mismatch=predictor.cfg.data.on_entity_mismatch, require_label=False).examples
    probs = np.zeros((len(examples), len(predictor.labels)))
    with tqdm(total=len(examples), unit="row") as bar:
        for lo in range(0, len(examples), model.max_batch_size):
            part = examples[lo : lo + model.max_batch_size]
            frame = pd.DataFrame([{"text": ex.text, **{f"{side}_{key}": getattr(getattr(ex, side), key)
                                                       for side in ("subject", "object")
                                                       for key in ("start", "end", "type")}} for ex in part])
            rows = model.predict(frame)["probs"]
            probs[lo : lo + len(part)] = [[row[label] for label in predictor.labels] for row in rows]
            bar.update(len(part))
    write_submission(out, [ex.id for ex in examples], probs, predictor.labels)
    return len(examples)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="models:/NAME@ALIAS, an MLflow model folder, or a checkpoint folder "
                                  "(e.g. runs/quickstart-ner/best)")
    ap.add_argument("--input", required=True, type=Path)
    ap.add_argument("--output", required=True, type=Path)
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--batch-size", type=int, default=None, help="rows per forward pass (default: the model's)")
    ap.add_argument("--types", default=None, help="comma-separated entity types to look for (a gliner-head "
                                                  "NER model only; default: the types it was trained on)")
    ap.add_argument("--device", default=None, help="torch device, e.g. cuda (default: the model's, cpu)")
    ap.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for models:/ URIs "
                                                          "(default: $MLFLOW_TRACKING_URI)")
    args = ap.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        ap.error("--batch-size must be a positive integer")
    from mlflow.exceptions import MlflowException

    from spanfirst.serving.load import load_serving_model

    try:
        overrides = {k: v for k, v in (("batch_size", args.batch_size), ("device", args.device)) if v is not None}
        model = load_serving_model(args.model, overrides or None, args.tracking_uri)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        if model.task == "re":
            n = predict_re(model, args.input, args.output)
        else:
            types = [t.strip() for t in args.types.split(",")] if args.types else None
            n = predict_ner(model, read_texts(args.input, args.text_column), args.output, types)
    except (DataError, FileNotFoundError, ValueError, MlflowException) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {n} predictions to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
