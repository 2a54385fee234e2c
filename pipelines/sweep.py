"""Hyperparameter sweep: Ray Tune (ASHA) over Ray Train trials, tracked in MLflow.

``python pipelines/sweep.py [SPACE.yaml] [--num-samples N] [--max-concurrent M] [--gpus-per-worker G]
[--workers-per-trial W] [--time-budget S] [--address ADDR] [--resume [DIR]] [--tracking-uri URI]
[--storage PATH_OR_URI] [--shared-storage] [--runtime torch|onnx|onnx-int8]``

Without arguments it runs ``search_spaces/quickstart.yaml`` (bundled sample, tiny offline backbone,
CPU) and ends with the command that serves the best model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from spanfirst.config import ConfigError
from spanfirst.errors import DataError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SPACE = REPO / "search_spaces" / "quickstart.yaml"
STORAGE_ENV = "SPANFIRST_SWEEP_STORAGE"  # set on every node by cluster.yaml


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("space", nargs="?", default=str(DEFAULT_SPACE), help="search-space YAML (default: quickstart)")
    ap.add_argument("--num-samples", type=int, help="trials to sample (default: the file's search.num_samples)")
    ap.add_argument("--max-concurrent", type=int, help="at most this many trials at once (also bounded by the cluster)")
    ap.add_argument("--gpus-per-worker", type=float, help="GPUs per Train worker; fractions share a GPU between trials")
    ap.add_argument("--workers-per-trial", type=int, help="Ray Train workers per trial")
    ap.add_argument("--time-budget", type=float, metavar="S", help="stop starting/continuing trials after S seconds")
    ap.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    ap.add_argument("--resume", nargs="?", const="latest", metavar="DIR",
                    help="continue an interrupted sweep: its folder, or the newest one of this space")
    ap.add_argument("--tracking-uri", help="MLflow tracking URI (default: the file's, $MLFLOW_TRACKING_URI, "
                                           "or sqlite:///mlflow.db here)")
    ap.add_argument("--storage", default=os.environ.get(STORAGE_ENV) or "runs/sweeps",
                    help=f"where Tune and Train results go: a folder or a URI such as s3://BUCKET/PREFIX "
                         f"(default: ${STORAGE_ENV}, else runs/sweeps); a multi-node cluster needs a URI "
                         "or --shared-storage")
    ap.add_argument("--shared-storage", action="store_true",
                    help="the --storage folder is a shared filesystem (NFS, ...) at the same path on every node")
    ap.add_argument("--runtime", choices=("torch", "onnx", "onnx-int8"),
                    help="how the best model is served (default: the base config's serving.runtime); an ONNX "
                         "runtime is checked against torch on dev before it is registered")
    args = ap.parse_args(argv)

    from spanfirst.serving.register import registration_report
    from spanfirst.serving.runtime_parity import RuntimeRefused
    from spanfirst.tracking import runs_page
    from spanfirst.sweep.runner import SweepError, SweepOptions, run_sweep, stopped_count
    from spanfirst.sweep.storage import StorageError

    opts = SweepOptions(num_samples=args.num_samples, max_concurrent=args.max_concurrent,
                        gpus_per_worker=args.gpus_per_worker, workers_per_trial=args.workers_per_trial,
                        time_budget_s=args.time_budget, address=args.address, resume=args.resume,
                        tracking_uri=args.tracking_uri, storage=args.storage, shared_storage=args.shared_storage,
                        runtime=args.runtime)
    try:
        out = run_sweep(args.space, opts)
    except (ConfigError, DataError, FileNotFoundError, SweepError, StorageError, RuntimeRefused) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print()
    print(f"sweep {out.name}: {len(out.trials)} trials in {out.wall_seconds:.0f} s, {out.concurrency} at a time, "
          f"{stopped_count(out)} stopped early by the scheduler; results in {out.experiment_dir}")
    if out.features:
        builds, hits = sum(out.features["builds"].values()), sum(out.features["hits"].values())
        print(f"tokenised data: built {builds}x for {len(out.features['builds'])} distinct setting(s), "
              f"reused by {hits} trial(s)")
    startups = sorted(t.startup for t in out.trials if t.startup is not None)
    if startups:
        print(f"per-trial start-up (its slot free -> first optimizer step): median {statistics.median(startups):.1f} s, "
              f"max {startups[-1]:.1f} s over {len(startups)} trial(s)")
    print("the runs in MLflow's UI:", runs_page(out.tracking_uri, out.experiment_id))
    if out.best is None:
        print("no trial produced a checkpoint; nothing registered", file=sys.stderr)
        return 1
    best = out.best
    print(f"best trial {best.trial_id} (MLflow run {out.run_ids.get(best.trial_id, '?')}): "
          f"{best.metric} = {best.score:.4f} at epoch {best.best['epoch']}")
    print("params:", json.dumps(best.params, ensure_ascii=False, default=str))
    print(registration_report(out.registered))
    return 0


if __name__ == "__main__":
    sys.exit(main())
