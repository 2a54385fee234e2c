"""NER heads side by side (issue 6): span-first, BIO, GlobalPointer, Efficient GlobalPointer and
GLiNER-style on the same backbone, data, epochs and seeds; then the cost of each head on top of an
encoder of xlm-roberta-base's shape (random weights: timing needs none), as a ratio to the
encoder alone."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from spanfirst.backbone import ensure_tiny_backbone, load_encoder, load_tokenizer
from benchmarks.ner import base_config, inference_speed, reuse_or_train
from benchmarks.report import table
from spanfirst.config import NerRunConfig, RunConfig, TinyBackboneConfig, apply_overrides
from spanfirst.data.readers import read_ner
from spanfirst.data.types import Example, Span
from spanfirst.ner.features import align_examples, collate
from spanfirst.ner.heads.common import encode_text
from spanfirst.ner.heads.registry import get_head

# label -> (model.head, config overrides). GLiNER pools each type's name tokens with its [ENT]
# token: on a randomly initialised encoder [ENT] alone does not learn (docs/config.md, NER heads).
HEADS: dict[str, tuple[str, dict[str, Any]]] = {
    "span-first": ("span_first", {}),
    "BIO": ("bio", {}),
    "GlobalPointer": ("global_pointer", {}),
    "Efficient GP": ("efficient_global_pointer", {}),
    "GLiNER (mean pooling)": ("gliner", {"ner.gliner.type_pooling": "mean"}),
}
# Decoding is timed at a fixed threshold, as a trained checkpoint decodes (a threshold left to dev
# calibration, "auto", decodes every span a calibration could keep)
DECODE_AT = {"ner.score_threshold": 0.3, "ner.global_pointer.threshold": 0.5, "ner.gliner.threshold": 0.5}
BASE_SHAPE = TinyBackboneConfig(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072)


def quality_runs(cfg: RunConfig, out: Path, seeds: list[int]) -> dict[str, list[dict[str, Any]]]:
    """Train every head once per seed (reusing runs that finished in ``out`` before); per run the
    best dev metrics and the epoch timings."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for label, (head, overrides) in HEADS.items():
        for seed in seeds:
            run_cfg = apply_overrides(cfg, {**overrides, "model.head": head, "train.seed": seed,
                                            "train.output_dir": str(out / f"{head}-seed{seed}")})
            res = reuse_or_train(run_cfg)
            best = res.best_metrics
            runs.setdefault(label, []).append({
                "seed": seed, "best_dir": res.best_dir,
                "strict_f1": best["dev_strict_f1"], "lenient_f1": best["dev_lenient_f1"],
                "epoch_seconds": statistics.mean(h["epoch_train_seconds"] for h in res.history),
                "peak_rss_mb": max(h["peak_rss_mb"] for h in res.history),
                "candidates": best.get("dev_candidates_per_sentence"),
            })
            print(f"[heads] {label} seed {seed}: strict F1 {best['dev_strict_f1']:.3f}", flush=True)
    return runs


def head_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for module in model.heads() for p in module.parameters())


def base_size_examples(texts: list[Example], length: int) -> list[Example]:
    """Dev sentences joined end to end (entities shifted), enough to fill ``length`` tokens each."""
    joined, out = Example("", []), []
    for ex in texts:
        shift = len(joined.text) + (1 if joined.text else 0)
        joined = Example((joined.text + " " + ex.text) if joined.text else ex.text,
                         joined.entities + [Span(s.start + shift, s.end + shift, s.type) for s in ex.entities])
        if len(joined.text) >= 3 * length:  # Korean: ~1.3 characters per tiny-tokenizer token
            out.append(joined)
            joined = Example("", [])
    return out


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def base_size_costs(train_texts: list[str], dev: list[Example], types: list[str], cache: Path,
                    lengths: tuple[int, ...] = (32, 64, 128), batch: int = 8, repeats: int = 3) -> list[dict[str, Any]]:
    """:func:`head_costs` on a randomly initialised encoder of xlm-roberta-base's shape."""
    return head_costs(str(ensure_tiny_backbone(train_texts, BASE_SHAPE, cache)), dev, types, HEADS, lengths, batch,
                      repeats)


def head_costs(path: str, dev: list[Example], types: list[str], heads: dict[str, tuple[str, dict[str, Any]]],
               lengths: tuple[int, ...], batch: int, repeats: int = 3) -> list[dict[str, Any]]:
    """Seconds per batch of the encoder alone and of each head's model (inference = decode,
    training = forward + backward of the loss) at each sequence length; one shared encoder.
    Heads that fit to the data (span-first's length bins) fit to the dev entities' token lengths."""
    torch.manual_seed(0)
    torch.set_num_threads(2)
    tok, encoder = load_tokenizer(path), load_encoder(path)
    encoder.eval()  # as in the head models' timings: no dropout
    rows = []
    models = {}
    for label, (head, overrides) in heads.items():
        cfg = apply_overrides(NerRunConfig(), {**DECODE_AT, **overrides, "model.backbone": path, "model.head": head,
                                               "model.dropout": 0.0})
        spec = get_head(head)
        spec.prepare_tokenizer(tok)  # GLiNER's prompt tokens; the other heads ignore the extra embedding rows
        if len(tok) > encoder.get_input_embeddings().num_embeddings:
            encoder.resize_token_embeddings(len(tok))
        if spec.needs_fitting(cfg):
            aligned, _ = align_examples(tok, dev, types, max(lengths))
            cfg = apply_overrides(cfg, spec.fit(cfg, [e - s + 1 for a in aligned for s, e, _ in a.gold]))
        models[label] = spec.build(encoder, cfg, {"types": types, **spec.label_info(tok, types)})
    for length in lengths:
        items, _ = align_examples(tok, base_size_examples(dev, length)[:batch], types, length)
        b = collate(items, tok.pad_token_id)
        ids, mask = b["input_ids"], b["attention_mask"]

        def encoder_train() -> None:
            encoder.zero_grad()
            encode_text(encoder, ids, mask).float().pow(2).mean().backward()

        with torch.no_grad():
            enc_infer = best_time(lambda: encode_text(encoder, ids, mask), repeats)
        enc_train = best_time(encoder_train, repeats)
        for label, model in models.items():
            model.eval()  # no dropout noise in the timing; GLiNER scores its full prompt
            with torch.no_grad():
                infer = best_time(lambda: model.decode(ids, mask, b["text_mask"]), repeats)

            def train_step(model=model) -> None:
                model.zero_grad()
                model(**b).loss.backward()

            train = best_time(train_step, repeats)
            rows.append({"head": label, "length": length, "infer": infer, "infer_ratio": infer / enc_infer,
                         "train": train, "train_ratio": train / enc_train, "params": head_parameters(model),
                         "enc_infer": enc_infer, "enc_train": enc_train})
            print(f"[heads] {length} tokens, {label}: inference {infer / enc_infer:.2f}x, "
                  f"training {train / enc_train:.2f}x", flush=True)
    return rows


def mean_spread(values: list[float]) -> str:
    """``mean ± sample standard deviation`` (± 0 for one value)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def plot(points: list[dict[str, Any]], path: Path) -> Path:
    """Dev strict F1 (mean, error bar = standard deviation over seeds) against training time per
    epoch and against inference speed, one marker per head."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_train, by_infer) = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for pt, marker in zip(points, "osD^v<>"):
        for ax, x in ((by_train, pt["epoch_seconds"]), (by_infer, pt["sentences_per_second"])):
            ax.errorbar([x], [pt["f1"]], yerr=[pt["f1_sd"]], fmt=marker, capsize=4, markersize=7)
            ax.annotate(pt["head"], (x, pt["f1"]), textcoords="offset points", xytext=(6, 6), fontsize=8)
    by_train.set_xlabel("training time per epoch (s, lower is better)")
    by_infer.set_xlabel("inference speed (sentences/s, higher is better)")
    by_train.set_ylabel("dev strict F1 (mean ± sd over seeds)")
    for ax in (by_train, by_infer):
        ax.grid(alpha=0.3)
        ax.margins(x=0.25, y=0.1)
    fig.suptitle("KLUE-NER: NER heads on the same tiny backbone, F1 against time")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(data_dir: Path, out: Path, epochs: int = 4, seeds: tuple[int, ...] = (0, 1, 2),
        train_examples: int = 2000, png: Path | None = None) -> str:
    """Run everything and return the markdown section. ``train_examples``: the first N training
    sentences (15 head x seed runs must fit a 2-core machine in under an hour)."""
    cfg = base_config(data_dir, out, epochs)
    cfg = apply_overrides(cfg, {"name": "bench-heads", "train.early_stopping_patience": 0,
                                "data.max_train_examples": train_examples})
    train, dev = read_ner(cfg.data.train)[:train_examples], read_ner(cfg.data.dev)
    types = sorted({s.type for ex in train for s in ex.entities})
    runs = quality_runs(cfg, out, list(seeds))
    dev_texts = [e.text for e in dev]
    speed = {label: inference_speed(r[0]["best_dir"], dev_texts, repeats=2) for label, r in runs.items()}
    tiny_params = {}
    for label, r in runs.items():
        from spanfirst.ner.predictor import NerPredictor

        tiny_params[label] = head_parameters(NerPredictor.load(r[0]["best_dir"]).model)
    costs = base_size_costs([e.text for e in train], dev, types, out / "base-backbone")

    base = runs["span-first"]
    base_f1 = statistics.mean(r["strict_f1"] for r in base)
    base_epoch = statistics.mean(r["epoch_seconds"] for r in base)
    base_speed = speed["span-first"]["sentences_per_second"]
    quality_rows = []
    for label, r in runs.items():
        f1 = [x["strict_f1"] for x in r]
        cands = [x["candidates"] for x in r if x["candidates"] is not None]
        quality_rows.append([
            label, mean_spread(f1), statistics.mean(f1) / max(base_f1, 1e-9), mean_spread([x["lenient_f1"] for x in r]),
            statistics.mean(x["epoch_seconds"] for x in r), statistics.mean(x["epoch_seconds"] for x in r) / base_epoch,
            speed[label]["sentences_per_second"], speed[label]["sentences_per_second"] / base_speed,
            max(x["peak_rss_mb"] for x in r), tiny_params[label],
            f"{statistics.mean(cands):.1f}" if cands else "n/a (tags every token)",
        ])
    points = [{"head": label, "f1": statistics.mean(x["strict_f1"] for x in r),
               "f1_sd": statistics.stdev([x["strict_f1"] for x in r]) if len(r) > 1 else 0.0,
               "epoch_seconds": statistics.mean(x["epoch_seconds"] for x in r),
               "sentences_per_second": speed[label]["sentences_per_second"]} for label, r in runs.items()]
    if png is not None:
        plot(points, png)
    lengths = sorted({c["length"] for c in costs})
    cost_rows = [[label] + [f"{c['infer_ratio']:.2f} / {c['train_ratio']:.2f}"
                            for length in lengths for c in costs if c["head"] == label and c["length"] == length]
                 + [next(c["params"] for c in costs if c["head"] == label)] for label in HEADS]
    enc_rows = [[length] + [f"{c['enc_infer'] * 1000:.0f} / {c['enc_train'] * 1000:.0f}"
                            for c in costs if c["length"] == length][:1] for length in lengths]
    lines = [
        "## NER heads side by side (issue 6)",
        "",
        f"KLUE-NER, the first {len(train)} train sentences / all {len(dev)} dev sentences, tiny offline backbone "
        f"({cfg.model.tiny.num_layers} layers, hidden {cfg.model.tiny.hidden_size}, random init), the quickstart "
        f"NER recipe (2 workers, batch {cfg.train.batch_size}, lr {cfg.train.lr_backbone:g}/{cfg.train.lr_heads:g}), "
        f"{epochs} epochs, best epoch kept, seeds {list(seeds)}; {platform.machine()} CPU, 2 cores. Regenerate with "
        f"`python pipelines/benchmark.py heads --epochs {epochs}` (about an hour here; with `--workdir DIR` the "
        "finished training runs are reused and only inference and base-size timings rerun). Ratios are to "
        "span-first in the same run. F1 is mean ± standard deviation over the seeds.",
        "",
        table(["head", "dev strict F1", "ratio", "dev lenient F1", "train s/epoch", "ratio",
               "inference sent/s", "ratio", "peak RSS/worker (MB)", "head params", "spans scored/sentence"],
              quality_rows),
        "",
        "Spans scored per sentence: span-first's dynamic top-k starts times its candidate lengths; "
        "GlobalPointer and GLiNER score every span up to their maximum width "
        f"({cfg.ner.global_pointer.max_span_width} / {cfg.ner.gliner.max_span_width} tokens); BIO scores tags. "
        "Inference: NerPredictor over the dev texts, batch 64, best of 2 passes.",
        "",
        *([f"![dev strict F1 against training time per epoch and inference speed]({png.name})", ""] if png else []),
        f"Cost at real size: a randomly initialised encoder of xlm-roberta-base's shape ({BASE_SHAPE.num_layers} "
        f"layers, hidden {BASE_SHAPE.hidden_size}, built by the project's offline backbone builder and loaded with "
        "`from_pretrained`), batch 8, 2 threads, best of 3. Each cell: the head model's time as a ratio to the "
        "encoder alone, inference (decode incl. candidates and NMS / decoding) / training step (forward + "
        "backward of the head's loss vs of a trivial loss on the encoder output). GLiNER's input also carries "
        f"the {len(types)}-type prompt, part of its cost.",
        "",
        table(["head"] + [f"{n} tokens: infer / train" for n in lengths] + ["head params (base)"], cost_rows),
        "",
        table(["tokens", "encoder alone, ms per batch: infer / train"], enc_rows),
    ]
    return "\n".join(lines)

