"""Show what training would read from a data file, before anyone spends GPU hours on it.

``python pipelines/inspect_data.py FILE [--task ner|re] [--format FORMAT] [--config CONFIG] [--set key=value ...]``

Prints the reader's summary (format and offsets it decided, examples, entities or relations per
label, nesting, lengths, rows skipped and why); for NER also the entities' token lengths under
the config's tokenizer, the entities lost to tokenisation, and the span-first candidates'
structural ceiling (the share of entities their lengths can reach) for the config's length bins,
fitted to this file when they are ``auto``. ``--config`` supplies the data settings (column
mapping, offsets, tag columns) and the backbone; without it the defaults and the tiny backbone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from spanfirst.config import (
    ConfigError,
    apply_overrides,
    config_class,
    load_config,
    parse_override,
)
from spanfirst.data.summary import spread, summary_lines
from spanfirst.errors import DataError


def ner_tokens(cfg, prepared: dict) -> list[str]:
    """Token-level facts under the config's tokenizer and head."""
    from spanfirst.ner.candidates import structural_reach
    from spanfirst.ner.task import NerTask, head_of

    task_cfg = apply_overrides(cfg, prepared.get("fitted", {}), "fitted to this file") if prepared.get("fitted") else cfg
    head = head_of(task_cfg)
    task = NerTask(task_cfg, prepared)  # tokenises and aligns as training would
    lengths = [e - s + 1 for a in task.train_aligned for s, e, _ in a.gold]
    rep = task.train_report.as_dict()
    reach = head.span_lengths(task_cfg)
    lines = [f"tokens ({cfg.model.backbone}, max_length {cfg.model.max_length}):",
             "  entity token lengths: " + ", ".join(f"{k} {v:g}" for k, v in spread(lengths).items()),
             "  entities on tokens / in the file: " + f"{rep.get('aligned')} / {rep.get('entities')}"
             + "".join(f", {k} {v}" for k, v in rep.items() if k in ("truncated", "unalignable", "boundary_mismatch") and v)]
    longest = Counter(lengths).most_common()
    if reach is not None:
        ceiling = structural_reach([(0, n - 1) for n in lengths], reach)
        bins = head.length_bins(task_cfg)
        lines.append(f"  {cfg.model.head} candidates: lengths 1-{max(reach)}"
                     + (f", length bins {bins}" if bins else "") + f" reach {ceiling:.3f} of the entities"
                     + (" (bins fitted to this file)" if prepared.get("fitted") else ""))
        missed = sorted(n for n, _ in longest if n not in reach)
        if missed:
            lines.append(f"  lengths no candidate reaches: {missed[:12]}{' ...' if len(missed) > 12 else ''}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", help="the data file (NER or RE, any supported layout)")
    ap.add_argument("--task", choices=["ner", "re"], default=None, help="default: the config's, else ner")
    ap.add_argument("--format", default=None, help="data.format (default: the config's, else auto)")
    ap.add_argument("--config", default=None, help="a run config whose data and model settings apply")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config) if args.config else config_class(args.task or "ner")()
        if args.task and cfg.task != args.task:
            raise ConfigError(f"--task {args.task}, but {args.config} is a '{cfg.task}' config")
        updates = {"data.train": str(Path(args.file).resolve()), "data.dev": None, "data.max_train_examples": None}
        if not args.config:
            updates["model.backbone"] = "tiny"  # offline; a config names the real one
        if args.format:
            updates["data.format"] = args.format
        cfg = apply_overrides(cfg, {**dict(parse_override(o) for o in args.set), **updates}, "inspect_data")
        from spanfirst.tasks import get_task

        prepared = get_task(cfg.task).prepare(cfg)
        summary = prepared["data"]["train"]
        if args.json:
            print(json.dumps(summary, ensure_ascii=False, indent=1))
            return 0
        print("\n".join(summary_lines(summary)))
        if cfg.task == "ner":
            print("\n".join(ner_tokens(cfg, prepared)))
    except (ConfigError, DataError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
