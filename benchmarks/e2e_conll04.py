"""``pipelines/benchmark.py e2e-conll04``: NER + RE composed and scored end to end on raw text.

CoNLL04 (English news, 4 entity types, 5 relation types; 922 train / 231 dev / 288 test sentences,
the split SpERT published) read as doccano JSONL documents (:mod:`benchmarks.spert_json`): every
entity and every relation of a sentence annotated, so the file is document-shaped with both layers.
Per seed an NER model (span-first) and an RE model (the design's recipe, candidate pairs of the
observed type pairs) are trained on the same file with all-MiniLM-L6-v2 (the ``bench`` extra), the
best dev epoch kept, then chained (:class:`~spanfirst.extraction.chain.Extractor`) and scored on dev
and on test (never used for selection): entity strict F1, relation F1 boundaries / strict, RE on gold
entities. The floor is the same chain built from the lookups the platform prints beside every model:
the filtered dictionary for entities, the type-pair table for relations.

The composed endpoint's latency is measured against the NER endpoint alone: both seed-0 models
registered in one SQLite store, each served by ``mlflow models serve``, requests alternating between
the two servers on the same test sentences.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.heads import mean_spread
from benchmarks.heads_wnut import MINILM_MISSING, minilm_path
from benchmarks.ner import reuse_or_train
from benchmarks.report import settle, table
from benchmarks.spert_json import to_doccano
from spanfirst.config import apply_overrides, load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "spanfirst" / "configs"
SPLITS = ("train", "dev", "test")
CONLL04_MISSING = ("e2e-conll04 needs CoNLL04 in the SpERT JSON layout: pass --corpus DIR holding "
                   "conll04_{train,dev,test}.json (or {train,dev,test}.json), as SpERT's download script and "
                   "its successors' repositories publish them")


@dataclass(frozen=True)
class Setup:
    seeds: tuple[int, ...] = (0, 1, 2)
    ner_epochs: int = 5
    re_epochs: int = 5
    max_negatives: int = 4  # data.max_negatives_per_text: 3,111 training pairs of 5,835 (1,283 positive)
    lr_backbone: float = 1.5e-4  # the better MiniLM lr of the WNUT-17 sweep (docs/benchmarks.md)
    lr_heads: float = 1e-3
    latency_requests: int = 200
    batch: int = 32
    batch_requests: int = 9  # all 288 test sentences


def corpus_files(corpus: Path, out: Path) -> dict[str, Path]:
    """The corpus's three splits as doccano JSONL in ``out``."""
    files = {}
    for split in SPLITS:
        src = next((p for p in (corpus / f"conll04_{split}.json", corpus / f"{split}.json") if p.is_file()), None)
        if src is None:
            raise SystemExit(CONLL04_MISSING)
        files[split] = to_doccano(src, out / f"{split}.jsonl")
    return files


def configs(files: dict[str, Path], encoder: Path, out: Path, setup: Setup):
    common = {"data.format": "doccano", "data.train": str(files["train"]), "data.dev": str(files["dev"]),
              "model.backbone": str(encoder), "model.max_length": 128, "train.num_workers": 1,
              "train.threads_per_worker": "auto", "train.lr_backbone": setup.lr_backbone,
              "train.lr_heads": setup.lr_heads, "train.early_stopping_patience": 0}
    ner = apply_overrides(load_config(CONFIGS / "quickstart_ner.yaml"), {
        **common, "name": "bench-e2e-ner", "train.epochs": setup.ner_epochs, "train.output_dir": str(out / "ner")})
    re_ = apply_overrides(load_config(CONFIGS / "klue_re_e5_small.yaml"), {
        **common, "name": "bench-e2e-re", "data.relation_list": None, "data.pair_types": "observed",
        "data.max_negatives_per_text": setup.max_negatives, "train.epochs": setup.re_epochs, "train.output_dir": str(out / "re")})
    return ner, re_


def train_pair(ner_cfg, re_cfg, out: Path, seed: int) -> tuple[Any, Any]:
    runs = []
    for cfg in (ner_cfg, re_cfg):
        task = cfg.task
        runs.append(reuse_or_train(apply_overrides(cfg, {"train.seed": seed,
                                                         "train.output_dir": str(out / f"{task}-seed{seed}")})))
    return runs[0], runs[1]


class DictionaryNer:
    """The filtered dictionary floor as an NER predictor (what the chain calls)."""

    def __init__(self, train: Path) -> None:
        from spanfirst.data.readers import read_ner
        from spanfirst.ner.baseline import DictionaryBaseline

        self.lookup = DictionaryBaseline().fit(read_ner(train, "doccano"))

    def predict(self, texts: list[str], batch_size: int = 64) -> list[list[dict[str, Any]]]:
        return [[{"start": s.start, "end": s.end, "type": s.type, "score": 1.0, "text": t[s.start:s.end]}
                 for s in self.lookup.predict(t)] for t in texts]


class TypePairRe:
    """The type-pair floor as an RE predictor: probability 1 on each pair's most frequent label."""

    def __init__(self, train: Path, re_cfg, labels: list[str], negative: str) -> None:
        from spanfirst.re.baseline import TypePairBaseline
        from spanfirst.re.reader import read_re_as_configured

        self.cfg, self.labels, self.negative = re_cfg, labels, negative  # cfg: the reading settings scoring uses
        self.lookup = TypePairBaseline().fit(read_re_as_configured(train, re_cfg.data).examples)

    def predict_proba(self, rows, batch_size: int = 64) -> np.ndarray:
        index = {label: i for i, label in enumerate(self.labels)}
        out = np.zeros((len(rows), len(self.labels)), dtype=np.float32)
        for k, label in enumerate(self.lookup.predict(rows)):
            out[k, index.get(label, index[self.negative])] = 1.0
        return out


def score(extractor, files: dict[str, Path]) -> dict[str, dict[str, float]]:
    from spanfirst.extraction.evaluate import evaluate_extractor

    return {split: evaluate_extractor(extractor, files[split], fmt="doccano") for split in ("dev", "test")}


def chains(ner_dir: Path, re_dir: Path, files: dict[str, Path], re_cfg):
    """(the trained chain, the floor chain with the same pair rules)."""
    from spanfirst import checkpoint as ckpt
    from spanfirst.extraction.chain import Extractor, pair_rules_of
    from spanfirst.ner.predictor import NerPredictor
    from spanfirst.re.predictor import RePredictor

    ner, re_ = NerPredictor.load(ner_dir), RePredictor.load(re_dir)
    rules = pair_rules_of(re_, ckpt.read(re_dir, task="re").labels)
    floor = Extractor(DictionaryNer(files["train"]), TypePairRe(files["train"], re_cfg, list(re_.labels), re_.negative),
                      rules)
    return Extractor(ner, re_, rules), floor


def latency(ner_dir: Path, re_dir: Path, texts: list[str], work: Path, setup: Setup) -> dict[str, dict[str, np.ndarray]]:
    """Seconds per request, NER endpoint and composed endpoint, requests alternating."""
    import mlflow

    from spanfirst.serving.log_composed import log_composed_model
    from spanfirst.serving.log_model import log_checkpoint_model
    from spanfirst.serving.server import ModelServer
    from spanfirst.tracking import use_uri

    uri = f"sqlite:///{(work / 'mlflow.db').resolve()}"
    with use_uri(uri):
        mlflow.set_experiment("bench-e2e-latency")
        with mlflow.start_run():
            log_checkpoint_model(ner_dir, "ner", registered_name="bench-e2e-ner")
            log_composed_model(ner_dir, re_dir, registered_name="bench-e2e-extract")
    env = {"MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": str(os.cpu_count() or 1)}
    servers = {name: ModelServer(f"models:/bench-e2e-{name}/latest", work / f"{name}-server.log", env)
               for name in ("ner", "extract")}
    times: dict[str, dict[str, list[float]]] = {name: {"single": [], "batch": []} for name in servers}
    try:
        for s in servers.values():
            s.start()
        for s in servers.values():
            s.wait_ready()
        clients = {name: s.client() for name, s in servers.items()}

        def call(name: str, rows: list[str]) -> float:
            t0 = time.perf_counter()
            status, body = clients[name].invoke({"inputs": rows})
            if status != 200 or len(body["predictions"]) != len(rows):
                raise RuntimeError(f"{name} server answered {status}: {str(body)[:300]}")
            return time.perf_counter() - t0

        for k in range(10):  # warm-up
            for name in servers:
                call(name, [texts[k % len(texts)]])
        for k in range(setup.latency_requests):
            for name in (servers if k % 2 == 0 else list(servers)[::-1]):
                times[name]["single"].append(call(name, [texts[k % len(texts)]]))
        for k, rows in enumerate(batches(texts, setup)):
            for name in (servers if k % 2 == 0 else list(servers)[::-1]):
                times[name]["batch"].append(call(name, rows))
    finally:
        for s in servers.values():
            s.stop()
    return {name: {k: np.array(v) for k, v in t.items()} for name, t in times.items()}


def batches(texts: list[str], setup: Setup) -> list[list[str]]:
    return [texts[i:i + setup.batch] for i in range(0, len(texts), setup.batch)][:setup.batch_requests]


def run(corpus: Path, work: Path, setup: Setup = Setup()) -> str:
    encoder = minilm_path()
    if encoder is None:
        raise SystemExit(f"e2e-conll04: {MINILM_MISSING}")
    work.mkdir(parents=True, exist_ok=True)
    files = corpus_files(corpus, work / "data")
    ner_cfg, re_cfg = configs(files, encoder, work, setup)
    load_train = os.getloadavg()[0]
    rows: list[dict[str, dict[str, float]]] = []
    parts, floor = [], None
    for seed in setup.seeds:
        ner_run, re_run = train_pair(ner_cfg, re_cfg, work, seed)
        model, floor_chain = chains(ner_run.best_dir, re_run.best_dir, files, re_cfg)
        got = score(model, files)
        rows.append(got)
        floor = floor or score(floor_chain, files)  # lookups of the training file: the same for every seed
        parts.append((ner_run, re_run))
        print(f"[e2e-conll04] seed {seed}: test entity F1 {got['test']['e2e_entity_f1']:.3f}, relation strict "
              f"{got['test']['e2e_relation_strict_f1']:.3f}, gold entities {got['test']['e2e_relation_gold_entities_f1']:.3f}",
              flush=True)
    texts = _texts(files["test"])
    load_latency = settle()
    lat = latency(parts[0][0].best_dir, parts[0][1].best_dir, texts, work, setup)
    return report(rows, floor, parts, lat, setup, load_train, load_latency, texts)




def _texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


METRICS = [("entity strict F1", "e2e_entity_f1"), ("relation F1, boundaries", "e2e_relation_boundaries_f1"),
           ("relation F1, strict", "e2e_relation_strict_f1"), ("RE on gold entities (micro F1)", "e2e_relation_gold_entities_f1"),
           ("loss from predicted entities", "e2e_relation_loss_from_entities")]


def report(rows, floor, parts, lat, setup: Setup, load_train: float, load_latency: float, texts: list[str]) -> str:
    table_rows = [[label, *(mean_spread([r[split][key] for r in rows]) for split in ("dev", "test")),
                   floor["dev"][key], floor["test"][key]] for label, key in METRICS]
    ms = lambda xs, q: float(np.percentile(xs, q) * 1000)  # noqa: E731
    tput = lambda xs, n: n / float(xs.sum())  # noqa: E731
    n_batch = sum(len(b) for b in batches(texts, setup))
    lat_rows = []
    for label, fn in (("latency p50, 1 sentence (ms)", lambda t: ms(t["single"], 50)),
                      ("latency p99, 1 sentence (ms)", lambda t: ms(t["single"], 99)),
                      (f"throughput, {setup.batch} sentences per request (sentences/s)", lambda t: tput(t["batch"], n_batch))):
        ner_v, ext_v = fn(lat["ner"]), fn(lat["extract"])
        lat_rows.append([label, ner_v, ext_v, ext_v / ner_v])
    epoch_s = {task: statistics.mean(statistics.mean(h["epoch_train_seconds"] for h in run.history)
                                     for run in (p[i] for p in parts)) for i, task in enumerate(("ner", "re"))}
    losers = [label for label, key in METRICS[:3]
              if statistics.mean(r["test"][key] for r in rows) <= floor["test"][key]]
    verdict = ("The chain loses to its floor on test in: " + "; ".join(losers) + "." if losers
               else "The chain beats its floor on test in every measure.")
    chars = np.array([len(t) for t in texts])
    return "\n".join([
        "## Entities and relations from raw text, scored end to end: CoNLL04 (issue 29)",
        "",
        "CoNLL04 (English news; Peop, Org, Loc, Other; Work_For, Kill, OrgBased_In, Live_In, Located_In), the "
        "922 / 231 / 288 sentence split SpERT published, read as one doccano JSONL file per split with every "
        "entity and relation annotated (`benchmarks/spert_json.py` writes it). Per seed an NER model (span-first, "
        "`quickstart_ner.yaml`'s heads) and an RE model (the design's recipe of `klue_re_e5_small.yaml`: typed "
        "punctuation markers, marker pooling, focal loss, label smoothing; candidate pairs of the type pairs "
        "observed in training relations, `data.pair_types: observed`, at most "
        f"{setup.max_negatives} negative pairs per training sentence, every candidate pair when scoring) train on the train file with "
        f"all-MiniLM-L6-v2 (6 layers, hidden 384), backbone lr {setup.lr_backbone:g}, heads {setup.lr_heads:g}, "
        f"{setup.ner_epochs} / {setup.re_epochs} epochs, 1 worker x 2 threads; dev chooses each part's best epoch "
        "and span-first's threshold; test is never used for a choice. The two best checkpoints are chained as a "
        "composed model serves them (NER, the RE checkpoint's pair rules, RE) and scored on raw text; seeds "
        f"{list(setup.seeds)}. Regenerate with `pip install -e '.[bench]'` then `python pipelines/benchmark.py "
        "e2e-conll04 --corpus DIR --workdir DIR` (DIR with `conll04_{train,dev,test}.json` in SpERT's layout; "
        f"finished runs are reused). x86_64 CPU, 2 cores; load average {load_train:.1f} before the training runs. "
        f"Seconds per training epoch: NER {epoch_s['ner']:.0f}, RE {epoch_s['re']:.0f} (mean over seeds).",
        "",
        table(["measure", "dev (mean ± sd)", "test (mean ± sd)", "floor chain dev", "floor chain test"], table_rows),
        "",
        "The floor chain is the same chain built from the lookups printed beside every model: entities from the "
        "filtered dictionary floor (training surface forms that are entities in at least half of their "
        "occurrences), relations from the type-pair floor (each subject/object type pair's most frequent training "
        "label, `no_relation` included, over the same candidate pairs); its \"RE on gold entities\" row is the "
        f"type-pair floor itself. {verdict} Relation strict: both spans, both types and the label right; boundaries: "
        "both spans and the label. Loss from predicted entities = RE on gold entities - relation strict.",
        "",
        "Latency of the composed endpoint against the NER endpoint alone: the seed-0 NER checkpoint and the "
        "composed model of the seed-0 pair registered in one SQLite store and each served by `mlflow models serve` "
        "(1 worker, torch on every core), a keep-alive client on the same machine alternating requests between the "
        f"two servers: {setup.latency_requests} one-sentence requests each after 10 warm-up ones, then all "
        f"{len(texts)} test sentences in requests of {setup.batch} (mean {chars.mean():.0f} characters). Load "
        f"average {load_latency:.1f} before (the benchmark waits up to 5 minutes for it to fall under 1).",
        "",
        table(["measure", "NER endpoint", "composed endpoint (NER + RE)", "composed / NER"], lat_rows),
    ])
