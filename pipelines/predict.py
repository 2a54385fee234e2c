"""Batch prediction with a saved checkpoint (NER or RE, read from the checkpoint).

``python pipelines/predict.py CHECKPOINT --input FILE --output OUT [--batch-size 64]``

NER input: plain text (one text per line), JSONL with a ``text`` field, or CSV with a ``text``
column; output: one JSON line per text, ``{"text": ..., "entities": [{start, end, type, score, text}]}``.
RE input: a KLUE-RE CSV or the project's RE JSONL (labels optional); output: the submission
CSV ``id, pred_label, probs`` (probs over all labels in the checkpoint's order).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from spanfirst.errors import DataError
from spanfirst.ner.predictor import NerPredictor


def read_texts(path: Path, column: str = "text") -> list[str]:
    """Texts from .txt (a line each), .jsonl (``column`` field) or .csv (``column`` column)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        import pandas as pd

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="checkpoint directory (e.g. runs/quickstart-ner/best)")
    ap.add_argument("--input", required=True, type=Path)
    ap.add_argument("--output", required=True, type=Path)
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    try:
        task = json.loads((Path(args.checkpoint) / "labels.json").read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError) as err:
        print(f"error: {args.checkpoint}: not a spanfirst checkpoint ({err})", file=sys.stderr)
        return 2
    if task == "re":
        from spanfirst.re.predictor import predict_file

        try:
            predict_file(args.checkpoint, args.input, args.output, batch_size=args.batch_size)
        except (DataError, FileNotFoundError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"wrote {args.output}")
        return 0
    try:
        texts = read_texts(args.input, args.text_column)
        predictor = NerPredictor.load(args.checkpoint, args.device)
    except (DataError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    chunk = args.batch_size * 8
    with args.output.open("w", encoding="utf-8") as out, tqdm(total=len(texts), unit="text") as bar:
        for lo in range(0, len(texts), chunk):
            part = texts[lo : lo + chunk]
            for text, ents in zip(part, predictor.predict(part, args.batch_size)):
                out.write(json.dumps({"text": text, "entities": ents}, ensure_ascii=False) + "\n")
            bar.update(len(part))
    print(f"wrote {len(texts)} predictions to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
