"""Write the bundled KLUE-RE sample: the first rows of the shared train/dev CSVs as RE JSONL,
and a copy of the relation list.

``python pipelines/make_re_sample.py [--src ../shared/data/klue-re] [--out spanfirst/resources/sample]
[--train-rows 1200] [--dev-rows 300]`` (defaults are relative to the repository root)
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from spanfirst.re.reader import read_re, read_relation_list, write_re_jsonl

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=REPO.parent / "shared" / "data" / "klue-re")
    ap.add_argument("--out", type=Path, default=REPO / "spanfirst" / "resources" / "sample")
    ap.add_argument("--train-rows", type=int, default=1200)
    ap.add_argument("--dev-rows", type=int, default=300)
    args = ap.parse_args(argv)
    if not args.src.is_dir():
        print(f"error: {args.src}: KLUE-RE folder not found", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", args.train_rows), ("dev", args.dev_rows)):
        examples = read_re(args.src / f"klue-re-{split}.csv", "klue_re_csv", limit=rows).examples
        n = write_re_jsonl(examples, args.out / f"klue_re_{split}.jsonl")
        print(f"wrote {n} examples to {args.out / f'klue_re_{split}.jsonl'}")
    read_relation_list(args.src / "relation_list.json")  # validate before copying
    shutil.copyfile(args.src / "relation_list.json", args.out / "klue_re_relations.json")
    print(f"copied the relation list to {args.out / 'klue_re_relations.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
