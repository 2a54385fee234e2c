"""Train one model with Ray Train: ``python pipelines/train.py CONFIG [--set key=value ...]``."""

from __future__ import annotations

import argparse
import json
import sys

from spanfirst.config import ConfigError, load_config
from spanfirst.errors import DataError
from spanfirst.train.trainer import run_training


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("config", help="run config YAML (e.g. spanfirst/configs/quickstart_ner.yaml)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value by dotted path, e.g. --set train.epochs=3")
    ap.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    args = ap.parse_args(argv)
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
    return 0 if result.best_dir else 1


if __name__ == "__main__":
    sys.exit(main())
