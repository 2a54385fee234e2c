"""Combine saved RE checkpoints and score the ensemble beside its members.

``python pipelines/ensemble.py CKPT1 CKPT2 ... --data dev.csv --rule soft|hard|logit|weighted
[--weights 0.6,0.4 | --weights f1 | --weights search] [--out DIR]``

Writes ``ensemble_report.json`` (members' and ensemble's scores side by side) and
``submission.csv`` (``id, pred_label, probs``) to ``--out``. Members with different label orders
are aligned by name; different label sets are an error.
"""

from __future__ import annotations

import argparse
import sys

from spanfirst.errors import DataError
from spanfirst.re.ensemble import RULES, run_ensemble


def parse_weights(text: str | None) -> str | list[float] | None:
    if text is None or text in ("f1", "search"):
        return text
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--weights: expected 'f1', 'search' or numbers like 0.6,0.4, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", help="RE checkpoint directories (e.g. runs/quickstart-re/best)")
    ap.add_argument("--data", required=True, help="RE file (KLUE-RE CSV or RE JSONL); scored when labelled")
    ap.add_argument("--format", default="auto", help="data format: auto, klue_re_csv, re_jsonl")
    ap.add_argument("--rule", choices=RULES, default="soft")
    ap.add_argument("--weights", default=None, help="weighted rule: comma-separated numbers, 'f1' or 'search'")
    ap.add_argument("--out", default="runs/ensemble", help="output folder (default: runs/ensemble)")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args(argv)
    try:
        weights = parse_weights(args.weights)
        run_ensemble(args.checkpoints, args.data, args.rule, weights, args.out, args.batch_size, args.format)
    except (DataError, FileNotFoundError, ValueError, argparse.ArgumentTypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
