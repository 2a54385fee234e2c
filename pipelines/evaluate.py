"""Evaluate a saved checkpoint on a labelled file; print the report and write JSON + PNG.

``python pipelines/evaluate.py CHECKPOINT --data DEV_FILE [--train TRAIN_FILE] [--out DIR]``

The training file (default: the one in the checkpoint's config) feeds the baseline that is
reported beside the model (dictionary baseline for NER, type-pair baseline for RE).

A composed NER + RE model (``pipelines/compose.py``: an MLflow model folder or a ``models:/`` URI)
is scored end to end on a file with entities and relations (doccano, Label Studio, brat): entity
strict F1, relation F1 with right boundaries and strict, and the RE part's F1 on gold entities.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spanfirst.errors import DataError
from spanfirst.evaluate import evaluate_checkpoint


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="checkpoint directory (e.g. runs/quickstart-ner/best)")
    ap.add_argument("--data", required=True, help="labelled file to evaluate on")
    ap.add_argument("--format", default="auto", help="data format (default: detect)")
    ap.add_argument("--train", default=None, help="training file for the baseline (default: from the checkpoint)")
    ap.add_argument("--out", default=None, help="output folder (default: <checkpoint>/eval)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for models:/ URIs")
    args = ap.parse_args(argv)
    from spanfirst.serving.load import is_mlflow_model

    if is_mlflow_model(args.checkpoint):
        return evaluate_composed(args)
    out = Path(args.out or Path(args.checkpoint) / "eval")
    try:
        flat, _report = evaluate_checkpoint(args.checkpoint, args.data, out, fmt=args.format,
                                            train=args.train, batch_size=args.batch_size)
    except (DataError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(flat, indent=1))
    print(f"report: {out / 'report.json'}")
    return 0


def evaluate_composed(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from spanfirst.extraction.evaluate import evaluate_extractor
    from spanfirst.serving.load import load_serving_model

    out = Path(args.out or "eval-composed")
    try:
        model = load_serving_model(args.checkpoint, None, args.tracking_uri)
        if model.task != "extract":
            raise ValueError(f"{args.checkpoint}: a '{model.task}' MLflow model; evaluate its checkpoint folder, or "
                             "compose it with pipelines/compose.py")
        flat = evaluate_extractor(model.impl.extractor, args.data, out, args.format, args.batch_size)
    except (DataError, FileNotFoundError, ValueError, MlflowException) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(flat, indent=1))
    print(f"report: {out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
