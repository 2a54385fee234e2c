"""Train one model with Ray Train: ``python pipelines/train.py CONFIG [--set key=value ...]``.

``--register NAME`` then logs the best checkpoint as an MLflow pyfunc model in a run of
``--experiment`` and registers it as NAME; it becomes ``NAME@champion`` only if it beats the
current champion on dev_score (the sweep's rule).
"""

from __future__ import annotations

import argparse
import json
import sys

from spanfirst.config import ConfigError, load_config
from spanfirst.errors import DataError
from spanfirst.train.trainer import run_training


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="run config YAML (e.g. spanfirst/configs/quickstart_ner.yaml)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value by dotted path, e.g. --set train.epochs=3")
    ap.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    ap.add_argument("--register", metavar="NAME", default=None,
                    help="register the best checkpoint as this MLflow model (champion only if better)")
    ap.add_argument("--tracking-uri", default=None,
                    help="MLflow tracking URI for --register (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    ap.add_argument("--experiment", default="spanfirst-train", help="MLflow experiment for --register")
    ap.add_argument("--max-batch-size", type=int, default=None,
                    help="most rows per serving request, stored in the model's model_config (default 256)")
    ap.add_argument("--runtime", choices=("torch", "onnx", "onnx-int8"),
                    help="how the registered model is served (default: the config's serving.runtime); an ONNX "
                         "runtime is checked against torch on dev before it is registered")
    args = ap.parse_args(argv)
    if args.max_batch_size is not None and args.max_batch_size < 1:
        ap.error("--max-batch-size must be a positive integer")
    try:
        cfg = load_config(args.config, args.overrides)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        result = run_training(cfg, args.address)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    best = {k: v for k, v in result.best_metrics.items() if isinstance(v, (int, float))}
    print(json.dumps({"best_checkpoint": str(result.best_dir) if result.best_dir else None, "best_epoch": best},
                     indent=1, default=str))
    if not result.best_dir:
        return 1
    if args.register:
        from spanfirst.serving.register import register_checkpoint, registration_report
        from spanfirst.serving.runtime_parity import RuntimeRefused

        model_config = {k: v for k, v in (("max_batch_size", args.max_batch_size), ("runtime", args.runtime))
                        if v is not None}
        try:
            reg = register_checkpoint(result.best_dir, cfg, result.history, float(result.best_metrics["dev_score"]),
                                      args.register, args.tracking_uri, args.experiment, model_config or None)
        except RuntimeRefused as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(registration_report(reg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
