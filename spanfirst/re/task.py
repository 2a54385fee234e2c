"""Relation extraction as a task of the one training loop (mirrors :mod:`spanfirst.ner.task`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from spanfirst.backbone import load_tokenizer, resolve_backbone
from spanfirst.checkpoint import Checkpoint
from spanfirst.config import RunConfig
from spanfirst.data.summary import re_summary
from spanfirst.data.types import RelationExample
from spanfirst.re.baseline import TypePairBaseline, type_pair_log_prior
from spanfirst.re.features import ReFeature, collate, featurize
from spanfirst.re.markers import add_marker_tokens, mark, marker_vocab
from spanfirst.re.metrics import micro_f1, re_scores
from spanfirst.re.model import ReModel
from spanfirst.re.reader import ReadResult, check_labels, read_re_as_configured, relation_labels
from spanfirst.tasks import Task, TaskServing, to_device


@dataclass
class RePrediction:
    """One dev example's logits over the saved label order (picklable, gathered across workers)."""

    index: int
    logits: list[float]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@torch.no_grad()
def predict_logits(model: ReModel, features: Sequence[ReFeature], pad_id: int, batch_size: int) -> np.ndarray:
    """(N, C) float32 logits in the order of ``features`` (batched by length for speed)."""
    device = next(model.parameters()).device
    order = sorted(range(len(features)), key=lambda i: len(features[i].input_ids))
    out = np.zeros((len(features), model.num_labels), dtype=np.float32)
    was_training = model.training
    model.eval()
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        batch = to_device(collate([features[i] for i in idx], pad_id), device)
        batch.pop("labels")
        out[idx] = model(**batch).logits.float().cpu().numpy()
    model.train(was_training)
    return out


def tiny_training_texts(style: str, examples: Sequence[RelationExample], markers: list[str]) -> list[str]:
    """Texts the tiny tokenizer learns from: marked ones for ``typed_punct`` (so @ * # ^ and the type
    names are pieces, not <unk>); raw ones otherwise (added special tokens need no pieces)."""
    if style == "typed_punct":
        return [mark(ex, style, markers).text for ex in examples]
    return [ex.text for ex in examples]


class ReTask(Task):
    name = "re"
    main_metric = "micro_f1"

    @classmethod
    def read_split(cls, cfg: RunConfig, path: str | None, limit: int | None) -> ReadResult:
        if not path:
            return ReadResult([])
        return read_re_as_configured(path, cfg.data, limit=limit)

    @classmethod
    def summarize(cls, path: str, read: ReadResult) -> dict[str, Any]:
        return re_summary(path, read.examples, read.skipped, read.skipped_rows, read.notes)

    @classmethod
    def prepared(cls, cfg: RunConfig, train: ReadResult, dev: ReadResult,
                 checkpoint: Checkpoint | None) -> dict[str, Any]:
        neg = cfg.data.negative_label
        if checkpoint is not None:  # its label order and markers; the train file only feeds the baseline
            saved = checkpoint.labels
            labels, types, markers = saved["labels"], saved.get("entity_types", []), saved.get("marker_tokens", [])
            type_pairs = saved.get("relation_type_pairs", [])
            backbone = checkpoint.backbone_path
            skipped_rows = dev.skipped_rows[:5]
        else:
            if not train.examples:
                raise ValueError(f"{cfg.data.train}: no training examples")
            if cfg.data.labels:
                labels = list(cfg.data.labels)
                if neg not in labels:
                    raise ValueError(f"data.labels: the negative label '{neg}' is not listed")
            else:
                labels = relation_labels(train.examples, neg, cfg.data.relation_list)
            check_labels(train.examples, labels, cfg.data.train)
            types = sorted({s.type for ex in train.examples for s in (ex.subject, ex.object)})
            # (subject type, object type) of the training relations: the pairs a composed NER + RE
            # model forms from predicted entities when data.pair_types is "observed"
            type_pairs = [list(p) for p in sorted({(ex.subject.type, ex.object.type) for ex in train.examples
                                                    if ex.label != neg})]
            markers = marker_vocab(cfg.re.marker_style, types)
            backbone = resolve_backbone(cfg.model.backbone, cfg.model.tiny,
                                        tiny_training_texts(cfg.re.marker_style, train.examples, markers))
            skipped_rows = train.skipped_rows[:5] + dev.skipped_rows[:5]
        if cfg.data.dev:
            check_labels(dev.examples, labels, cfg.data.dev)
        return {
            "train": train.examples, "dev": dev.examples, "labels": labels, "entity_types": types,
            "marker_tokens": markers, "backbone_path": backbone, "relation_type_pairs": type_pairs,
            "skipped": {"train": train.skipped, "dev": dev.skipped}, "skipped_rows": skipped_rows,
        }

    @classmethod
    def feature_settings(cls, cfg: RunConfig, prepared: dict[str, Any]) -> dict[str, Any]:
        model = {k: v for k, v in cfg.model.model_dump().items() if k not in ("dropout", "lora")}
        return {"model": model, "data": cfg.data.model_dump(), "marker_style": cfg.re.marker_style,
                **{k: prepared[k] for k in ("labels", "marker_tokens", "backbone_path")}}

    def __init__(self, cfg: RunConfig, prepared: dict[str, Any], features: dict[str, Any] | None = None) -> None:
        super().__init__(cfg, prepared)
        self.labels: list[str] = prepared["labels"]
        self.negative = cfg.data.negative_label
        self.label_to_id = {label: i for i, label in enumerate(self.labels)}
        self.markers: list[str] = prepared["marker_tokens"]
        self.tokenizer = load_tokenizer(prepared["backbone_path"])
        add_marker_tokens(self.tokenizer, self.markers)
        style, max_len, types = cfg.re.marker_style, cfg.model.max_length, prepared["entity_types"]
        if features is None:
            train = [ex for ex in prepared["train"] if ex.label in self.label_to_id]  # eval: baseline only
            features = {
                "train": featurize(self.tokenizer, train, style, self.markers, self.label_to_id, max_len, types),
                "dev": featurize(self.tokenizer, prepared["dev"], style, self.markers, self.label_to_id, max_len,
                                 types),
                "baseline": TypePairBaseline().fit(prepared["train"])}
        (self.train_features, self.train_windows), (self.dev_features, self.dev_windows) = \
            features["train"], features["dev"]
        self.baseline = features["baseline"]

    def features(self) -> dict[str, Any]:
        return {"train": (self.train_features, self.train_windows), "dev": (self.dev_features, self.dev_windows),
                "baseline": self.baseline}

    def label_info(self) -> dict[str, Any]:
        return {"labels": self.labels, "negative_label": self.negative, "marker_style": self.cfg.re.marker_style,
                "marker_tokens": self.markers, "entity_types": self.prepared["entity_types"],
                "relation_type_pairs": self.prepared.get("relation_type_pairs", [])}

    @staticmethod
    def build_from_checkpoint(encoder: nn.Module, cfg: RunConfig, labels: dict[str, Any]) -> nn.Module:
        n_types, n_labels = len(labels.get("entity_types", [])), len(labels["labels"])
        prior = torch.zeros(n_types + 1, n_types + 1, n_labels) if cfg.re.type_prior else None  # loaded after
        return ReModel(encoder, n_labels, cfg.re, cfg.model.dropout, type_prior=prior)

    @classmethod
    def confusion_matrices(cls, cfg: RunConfig, labels: dict[str, Any],
                           report: dict[str, Any]) -> dict[str, tuple[list[list[int]], list[str]]]:
        return {"relation_confusion": (report["confusion"], labels["labels"])} if "confusion" in report else {}

    @classmethod
    def serving(cls) -> TaskServing:
        from spanfirst.re.serving import ReServing

        return ReServing()

    # -- model ------------------------------------------------------------------------------
    def label_counts(self) -> torch.Tensor:
        labels = torch.tensor([f.label for f in self.train_features], dtype=torch.long)
        return torch.bincount(labels, minlength=len(self.labels))

    def loss_settings(self) -> tuple[torch.Tensor | None, float]:
        """(class weights or None, label-smoothing epsilon) from the config and train label counts."""
        from spanfirst.losses import entropy_label_smoothing, inverse_log_frequency_weights

        r = self.cfg.re
        counts = self.label_counts()
        weights = inverse_log_frequency_weights(counts).float() if r.class_weights == "auto" else None
        if r.label_smoothing == "auto":
            eps = float(entropy_label_smoothing(counts, eps_min=r.smoothing_min, eps_max=r.smoothing_max))
        else:
            eps = float(r.label_smoothing)
        return weights, eps

    def type_prior(self) -> torch.Tensor:
        """``re.type_prior``'s table from the training features (:func:`type_pair_log_prior`)."""
        f = self.train_features
        return type_pair_log_prior([x.subject_type for x in f], [x.object_type for x in f], [x.label for x in f],
                                   len(self.prepared["entity_types"]), len(self.labels), self.cfg.re.type_prior_strength)

    def build_model(self) -> nn.Module:
        weights, eps = self.loss_settings()
        prior = self.type_prior() if self.cfg.re.type_prior else None
        return ReModel(self.build_encoder(), len(self.labels), self.cfg.re, self.cfg.model.dropout, weights, eps, prior)

    # -- data -------------------------------------------------------------------------------
    def train_items(self) -> list[ReFeature]:
        return self.train_features

    def dev_items(self) -> list[ReFeature]:
        return self.dev_features

    def collate(self, items: Sequence[ReFeature]) -> dict[str, Any]:
        return collate(items, self.tokenizer.pad_token_id)

    def item_lengths(self, items: Sequence[ReFeature]) -> list[int]:
        return [len(it.input_ids) for it in items]

    # -- evaluation -------------------------------------------------------------------------
    def predict(self, model: nn.Module, items: Sequence[ReFeature], indices: Sequence[int]) -> list[RePrediction]:
        logits = predict_logits(model, items, self.tokenizer.pad_token_id, self.cfg.train.eval_batch_size)
        return [RePrediction(int(i), row.tolist()) for i, row in zip(indices, logits)]

    def evaluate(self, predictions: list[RePrediction]) -> tuple[dict[str, float], dict[str, Any]]:
        preds = sorted(predictions, key=lambda p: p.index)
        assert [p.index for p in preds] == list(range(len(self.dev_features))), "one prediction per dev example"
        dev: list[RelationExample] = self.prepared["dev"]
        probs = softmax(np.asarray([p.logits for p in preds], dtype=np.float64).reshape(len(preds), len(self.labels)))
        gold = [f.label for f in self.dev_features]
        report: dict[str, Any] = {"labels": self.labels, "negative_label": self.negative}
        report.update(re_scores(gold, probs, self.labels, self.negative))
        neg = self.label_to_id[self.negative]
        base = [self.label_to_id.get(label, neg) for label in self.baseline.predict(dev)]
        report["type_pair_baseline"] = {"micro": micro_f1(gold, base, neg),
                                        "accuracy": float(np.mean(np.asarray(gold) == np.asarray(base))) if gold else 0.0}
        report["windows"] = {"train": self.train_windows.as_dict(), "dev": self.dev_windows.as_dict()}
        report["data"] = self.prepared.get("data", {})
        report["skipped_mismatched_rows"] = {**self.prepared.get("skipped", {}),
                                             "first": self.prepared.get("skipped_rows", [])}
        report["predictions"] = [
            {"id": ex.id, "gold": ex.label, "pred": self.labels[int(row.argmax())], "probs": [round(float(x), 6) for x in row]}
            for ex, row in zip(dev, probs)
        ]
        return summary(report), report


def summary(report: dict[str, Any]) -> dict[str, float]:
    """Flat scalar metrics for Ray/MLflow (the loop adds the dev_ prefix)."""
    micro, base = report["micro"], report["type_pair_baseline"]["micro"]
    return {
        "micro_f1": micro["f1"], "micro_precision": micro["precision"], "micro_recall": micro["recall"],
        "auprc": report["auprc"], "accuracy": report["accuracy"], "baseline_micro_f1": base["f1"],
        "windowed_dev": float(report["windows"]["dev"]["windowed"]),
    }
