"""Write the bundled KLUE-NER sample: the first sentences of the shared train/dev TSVs as span JSONL.

``python pipelines/make_sample.py [--src ../shared/data/klue-ner] [--out spanfirst/resources/sample]
[--train-rows 1000] [--dev-rows 200]`` (defaults are relative to the repository root)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spanfirst.data.readers import read_ner, write_span_jsonl

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=REPO.parent / "shared" / "data" / "klue-ner",
                    help="folder holding klue-ner-train.tsv and klue-ner-dev.tsv")
    ap.add_argument("--out", type=Path, default=REPO / "spanfirst" / "resources" / "sample")
    ap.add_argument("--train-rows", type=int, default=1000, help="sentences kept from the train file")
    ap.add_argument("--dev-rows", type=int, default=200, help="sentences kept from the dev file")
    args = ap.parse_args(argv)
    if not args.src.is_dir():
        print(f"error: {args.src}: KLUE-NER folder not found", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", args.train_rows), ("dev", args.dev_rows)):
        examples = read_ner(args.src / f"klue-ner-{split}.tsv", "klue_bio", limit=rows)
        target = args.out / f"klue_ner_{split}.jsonl"
        n = write_span_jsonl(examples, target)
        print(f"wrote {n} examples ({sum(len(e.entities) for e in examples)} entities) to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
