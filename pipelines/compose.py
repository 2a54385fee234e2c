"""Compose an NER model and an RE model into one model that extracts entities and their relations
from raw text, served like the others.

``python pipelines/compose.py --ner SOURCE --re SOURCE (--output DIR | --register NAME) [--data DOCS]``
``python pipelines/compose.py --ner-sweep DIR --re-sweep DIR --top-k K --data DOCS (--output DIR | --register NAME)``

SOURCE: a registered model URI (``models:/spanfirst-ner@champion``, the default when a sweep
registered one), an MLflow model folder or a checkpoint folder. ``--output`` saves an MLflow model
folder; ``--register`` logs it in a new MLflow run and registers it. ``--data`` (a doccano, Label
Studio or brat file with entities and relations) scores the chain end to end (entity strict F1,
relation F1 with right boundaries and strict, and the RE model's F1 on gold entities), logs the
scores with the model, and the ``champion`` alias moves only to a better end-to-end strict relation F1.

``--ner-sweep`` / ``--re-sweep`` (a finished sweep's folder, the one holding ``trials.csv``) compose
the top-k checkpoints of each sweep instead: every pair is scored on ``--data`` and the pair with the
best end-to-end strict relation F1 is kept (ranked separately, the best parts need not make the best
pair).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from spanfirst.errors import DataError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ner", default="models:/spanfirst-ner@champion", help="the NER model (default: its champion)")
    ap.add_argument("--re", default="models:/spanfirst-re@champion", help="the RE model (default: its champion)")
    ap.add_argument("--output", type=Path, default=None, help="save an MLflow model folder here")
    ap.add_argument("--register", default=None, metavar="NAME", help="log and register the composed model as NAME")
    ap.add_argument("--data", default=None, help="a file with entities and relations to score the chain on")
    ap.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    ap.add_argument("--experiment", default="spanfirst-compose")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--ner-sweep", type=Path, default=None, help="a finished NER sweep's folder (its trials.csv)")
    ap.add_argument("--re-sweep", type=Path, default=None, help="a finished RE sweep's folder (its trials.csv)")
    ap.add_argument("--top-k", type=int, default=3, help="checkpoints taken from each sweep (default 3)")
    args = ap.parse_args(argv)
    if not args.output and not args.register:
        ap.error("give --output DIR, --register NAME or both")
    if (args.ner_sweep is None) != (args.re_sweep is None):
        ap.error("--ner-sweep and --re-sweep go together")
    if args.ner_sweep is not None and not args.data:
        ap.error("--ner-sweep/--re-sweep rank the pairs on --data: give it")
    from mlflow.exceptions import MlflowException

    from spanfirst import tracking
    from spanfirst.extraction.evaluate import METRIC, evaluate_extractor
    from spanfirst.serving.log_composed import load_composed, log_composed_model, part_checkpoint, save_composed_model

    uri = tracking.resolve_tracking_uri(args.tracking_uri)
    try:
        with tempfile.TemporaryDirectory(prefix="spanfirst-compose-") as tmp, tracking.use_uri(uri):
            metrics = {}
            if args.ner_sweep is not None:
                ner_dir, re_dir, metrics = best_pair(args)
                args.ner, args.re = str(ner_dir), str(re_dir)
            else:
                ner_dir = part_checkpoint(args.ner, "ner", Path(tmp))
                re_dir = part_checkpoint(args.re, "re", Path(tmp))
            if args.data and not metrics:
                extractor = load_composed(ner_dir, re_dir).extractor
                metrics = evaluate_extractor(extractor, args.data, batch_size=args.batch_size)
                print(json.dumps(metrics, indent=1))
            if args.output:
                save_composed_model(ner_dir, re_dir, args.output)
                print(f"saved the composed model to {args.output}")
            if args.register:
                register(uri, args, ner_dir, re_dir, metrics, METRIC, log_composed_model)
    except (DataError, FileNotFoundError, ValueError, MlflowException) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def top_checkpoints(sweep: Path, k: int) -> list[tuple[str, float, Path]]:
    """(trial id, score, checkpoint folder) of a finished sweep's ``k`` best trials that kept a
    checkpoint, best first."""
    import csv

    table = sweep / "trials.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table}: not found; --ner-sweep / --re-sweep take a finished sweep's folder")
    with table.open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("score") and r.get("checkpoint") and Path(r["checkpoint"]).is_dir()]
    if not rows:
        raise ValueError(f"{table}: no trial with a score and a checkpoint on this machine")
    rows.sort(key=lambda r: -float(r["score"]))
    return [(r["trial_id"], float(r["score"]), Path(r["checkpoint"])) for r in rows[:k]]


def best_pair(args: argparse.Namespace) -> tuple[Path, Path, dict]:
    """Score every pair of the two sweeps' top-k checkpoints on ``--data``; the best one by the
    end-to-end strict relation F1, with its scores. Prints the table of pairs."""
    from spanfirst.extraction.chain import Extractor, pair_rules_of
    from spanfirst.extraction.evaluate import METRIC, evaluate_extractor
    from spanfirst.ner.predictor import NerPredictor
    from spanfirst.re.predictor import RePredictor
    from spanfirst import checkpoint as ckpt

    ners, res = top_checkpoints(args.ner_sweep, args.top_k), top_checkpoints(args.re_sweep, args.top_k)
    loaded_re = [(t, s, p, RePredictor.load(p), ckpt.read(p, task="re").labels) for t, s, p in res]
    best = None
    print(f"{'ner trial':>10} {'ner dev':>8} {'re trial':>10} {'re dev':>8} {'e2e strict rel F1':>18}")
    for nt, ns, npath in ners:
        ner = NerPredictor.load(npath)
        for rt, rs, rpath, re_, labels in loaded_re:
            metrics = evaluate_extractor(Extractor(ner, re_, pair_rules_of(re_, labels)), args.data,
                                         batch_size=args.batch_size)
            print(f"{nt:>10} {ns:8.4f} {rt:>10} {rs:8.4f} {metrics[METRIC]:18.4f}", flush=True)
            if best is None or metrics[METRIC] > best[2][METRIC]:
                best = (npath, rpath, {**metrics, "e2e_pairs_scored": len(ners) * len(res)})
    print(f"best pair: {best[0]} + {best[1]} ({METRIC} {best[2][METRIC]:.4f})")
    return best


def register(uri: str, args: argparse.Namespace, ner_dir: Path, re_dir: Path, metrics: dict, metric: str,
             log_composed_model) -> None:
    """A run holding the composed model, its parts and end-to-end scores; the champion alias moves
    only to a better ``metric`` (a model registered without scores never takes it from one with)."""
    import mlflow

    from spanfirst import tracking

    c = tracking.client(uri)
    run_id = c.create_run(tracking.ensure_experiment(uri, args.experiment), run_name=f"compose-{args.register}",
                          tags={"spanfirst.task": "extract", "spanfirst.source": "pipelines/compose.py"}).info.run_id
    try:
        tracking.log_params(uri, run_id, {"ner": args.ner, "re": args.re, "data": args.data or ""})
        tracking.log_metrics(uri, run_id, {k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=0)
        with mlflow.start_run(run_id=run_id):
            _info, version = log_composed_model(ner_dir, re_dir, args.register)
        number = str(version.version)
        if metric in metrics:
            promoted, message = tracking.promote_if_better(uri, args.register, number, metric, metrics[metric])
        else:
            promoted, message = False, (f"version {number} registered without the alias: no --data, so no {metric} "
                                        "to compare")
            if tracking.champion_score(uri, args.register, metric)[0] is None:
                promoted, message = tracking.promote_if_better(uri, args.register, number, metric, float("-inf"))
    except BaseException:
        c.set_terminated(run_id, status="FAILED")
        raise
    c.set_terminated(run_id, status="FINISHED")
    print(f"registered model: {args.register} version {number}{' (alias champion)' if promoted else ''}\n{message}")
    print(f"serve it:\n  export MLFLOW_TRACKING_URI={uri}\n  mlflow models serve -m models:/{args.register}@"
          f"{tracking.CHAMPION} --env-manager local -h 127.0.0.1 -p 5003")


if __name__ == "__main__":
    sys.exit(main())
