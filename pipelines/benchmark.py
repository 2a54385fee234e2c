"""Regenerate the figures in docs/benchmarks.md.

``python pipelines/benchmark.py ner [--data ../shared/data] [--epochs 10]``
``python pipelines/benchmark.py sweep``  (the quickstart sweep: wall time, per-trial overhead, CPU use)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from spanfirst.bench.report import write_section

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suite", choices=["ner", "re", "sweep"])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--workdir", type=Path, default=None, help="where runs go (default: a temporary folder)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spanfirst-bench-") as tmp:
        work = args.workdir or Path(tmp)
        if args.suite == "re":
            from spanfirst.bench.re import run as run_re

            body = run_re(args.data.resolve(), work, epochs=args.epochs)
        elif args.suite == "ner":
            from spanfirst.bench.ner import run

            body = run(args.data.resolve(), work, epochs=args.epochs)
        elif args.suite == "sweep":
            from spanfirst.bench.sweep import run as run_sweep_bench

            body = run_sweep_bench(work)
    write_section(args.doc, args.suite, body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
