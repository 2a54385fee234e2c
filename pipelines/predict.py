"""Batch prediction with the serving model (NER or RE, read from the model).

``python pipelines/predict.py MODEL --input FILE --output OUT [--batch-size N] [--tracking-uri URI]``

MODEL is a registered model URI (``models:/spanfirst-ner@champion``), an MLflow model folder, or
a checkpoint folder (``runs/quickstart-ner/best``); all run the same pyfunc model that
``mlflow models serve`` runs. NER input: plain text (one text per line), JSONL with a ``text``
field, or CSV with a ``text`` column; output: one JSON line per text,
``{"text": ..., "entities": [{start, end, type, score, text}]}`` (blank lines get no entities), or with
``--output-format doccano|label-studio`` that tool's import file (Label Studio: ``predictions`` with
scores and the model version), so a team corrects the model's output; the input may be a tool's export.
RE input: a KLUE-RE CSV or the project's RE JSONL (labels optional); output: the submission
CSV ``id, pred_label, probs`` (probs over all labels in the model's order).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spanfirst.errors import DataError


NO_TEXT_LIMIT = 10**12


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="models:/NAME@ALIAS, an MLflow model folder, or a checkpoint folder "
                                  "(e.g. runs/quickstart-ner/best)")
    ap.add_argument("--input", required=True, type=Path)
    ap.add_argument("--output", required=True, type=Path)
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--output-format", choices=["jsonl", "doccano", "label-studio"], default="jsonl",
                    help="NER or composed NER + RE: JSON lines (default) or an annotation tool's import file")
    ap.add_argument("--offset-unit", choices=["code_points", "utf16"], default=None,
                    help="offsets in the import file (default: utf16 for label-studio, code_points otherwise)")
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
        # offline, a long document is read whole: the server's per-text limit does not apply
        overrides["max_text_chars"] = NO_TEXT_LIMIT
        model = load_serving_model(args.model, overrides, args.tracking_uri)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        if args.output_format != "jsonl" and model.task == "re":
            raise ValueError(f"--output-format {args.output_format}: written for NER and composed models; an RE "
                             "model writes the submission CSV")
        options = {"text_column": args.text_column,
                   "types": [t.strip() for t in args.types.split(",")] if args.types else None,
                   "output_format": args.output_format, "offset_unit": args.offset_unit,
                   "model_version": args.model}
        n = model.impl.serving.predict_file(model, args.input, args.output, options)
    except (DataError, FileNotFoundError, ValueError, MlflowException) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {n} predictions to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
