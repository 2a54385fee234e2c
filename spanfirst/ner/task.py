"""NER as a task of the training loop, with any head of :mod:`spanfirst.ner.heads` (``model.head``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from spanfirst.backbone import load_tokenizer, resolve_backbone
from spanfirst.checkpoint import Checkpoint
from spanfirst.config import RunConfig, apply_overrides
from spanfirst.data.alignment import AlignedExample
from spanfirst.data.readers import label_set, read_ner
from spanfirst.data.summary import ner_summary
from spanfirst.data.types import Example
from spanfirst.ner.baseline import DictionaryBaseline
from spanfirst.ner.calibration import best_threshold
from spanfirst.ner.candidates import structural_reach
from spanfirst.ner.evaluation import SentencePrediction, ner_report, summary
from spanfirst.ner.features import align_examples, collate
from spanfirst.ner.heads.base import NerHead, TrainingSpans
from spanfirst.ner.heads.registry import get_head
from spanfirst.ner.inference import decode_items, merge_text
from spanfirst.ner.windows import TextWindows, Window
from spanfirst.tasks import Task, TaskServing


def head_of(cfg: RunConfig) -> type[NerHead]:
    return get_head(cfg.model.head)


def train_span_lengths(cfg: RunConfig, head: type[NerHead], train: list[Example], types: list[str],
                       backbone: str) -> list[int]:
    """Token lengths of the training entities under the run's tokenizer (long texts read as windows)."""
    tokenizer = load_tokenizer(backbone)
    head.prepare_tokenizer(tokenizer)
    windows = TextWindows(tokenizer, cfg.model.max_length, 0) if cfg.data.long_train_texts == "window" else None
    aligned, _ = align_examples(tokenizer, train, types, cfg.model.max_length, windows=windows)
    return [e - s + 1 for a in aligned for s, e, _ in a.gold]


@dataclass
class NerRead:
    """The examples of one split and what the reader decided itself (format, offsets)."""

    examples: list[Example]
    notes: dict[str, Any]


class NerTask(Task):
    name = "ner"
    main_metric = "strict_f1"

    @classmethod
    def read_split(cls, cfg: RunConfig, path: str | None, limit: int | None) -> NerRead:
        if not path:
            return NerRead([], {})
        d, notes = cfg.data, {}
        examples = read_ner(path, d.format, conll_token_column=d.conll_token_column,
                            conll_tag_column=d.conll_tag_column, conll_scheme=d.conll_scheme, offsets=d.offsets,
                            limit=limit, notes=notes, fields=d.fields, offset_unit=d.offset_unit,
                            on_mismatch=d.on_entity_mismatch)
        return NerRead(examples, notes)

    @classmethod
    def summarize(cls, path: str, read: NerRead) -> dict[str, Any]:
        return ner_summary(path, read.examples, read.notes)

    @classmethod
    def prepared(cls, cfg: RunConfig, train_read: NerRead, dev_read: NerRead,
                 checkpoint: Checkpoint | None) -> dict[str, Any]:
        train, dev = train_read.examples, dev_read.examples
        if checkpoint is not None:
            types, backbone = checkpoint.labels["types"], checkpoint.backbone_path
        else:
            types = list(cfg.data.labels) or label_set(train + dev)
            backbone = resolve_backbone(cfg.model.backbone, cfg.model.tiny, [e.text for e in train])
        prepared: dict[str, Any] = {"train": train, "dev": dev, "types": types, "backbone_path": backbone}
        head = head_of(cfg)
        if head.needs_fitting(cfg):  # once, here: every worker and the checkpoint get the same values
            prepared["fitted"] = head.fit(cfg, train_span_lengths(cfg, head, train, types, backbone))
        return prepared

    @classmethod
    def feature_settings(cls, cfg: RunConfig, prepared: dict[str, Any]) -> dict[str, Any]:
        cfg = cls._fitted(cfg, prepared)
        model = {k: v for k, v in cfg.model.model_dump().items() if k not in ("dropout", "lora")}  # the encoder's
        return {"model": model, "data": cfg.data.model_dump(), "types": prepared["types"],
                "backbone_path": prepared["backbone_path"],
                "window_overlap": max(head_of(cfg).span_lengths(cfg) or [0])}

    @staticmethod
    def _fitted(cfg: RunConfig, prepared: dict[str, Any]) -> RunConfig:
        return apply_overrides(cfg, prepared["fitted"], "fitted to the training data") if prepared.get("fitted") else cfg

    def __init__(self, cfg: RunConfig, prepared: dict[str, Any], features: dict[str, Any] | None = None) -> None:
        cfg = self._fitted(cfg, prepared)
        super().__init__(cfg, prepared)
        self.head = head_of(cfg)
        self.types: list[str] = prepared["types"]
        self.tokenizer = load_tokenizer(prepared["backbone_path"])
        self.head.prepare_tokenizer(self.tokenizer)
        max_len = cfg.model.max_length
        # Texts longer than the window: read as overlapping windows, with the overlap the predictor uses
        self.windows = TextWindows(self.tokenizer, max_len, max(self.head.span_lengths(cfg) or [0]))
        if features is None:
            train = align_examples(self.tokenizer, prepared["train"], self.types, max_len,
                                   windows=self.windows if cfg.data.long_train_texts == "window" else None)
            dev = align_examples(self.tokenizer, prepared["dev"], self.types, max_len, windows=self.windows)
            features = {"train": train, "dev": dev, "baseline": DictionaryBaseline().fit(prepared["train"])}
        (self.train_aligned, self.train_report), (self.dev_aligned, self.dev_report) = features["train"], features["dev"]
        self.baseline = features["baseline"]
        self._model: nn.Module | None = None  # the model of the last predict(): its merge policy
        self.calibrated: dict[str, float] = {}  # threshold(s) chosen on dev by the last evaluate()

    def features(self) -> dict[str, Any]:
        return {"train": (self.train_aligned, self.train_report), "dev": (self.dev_aligned, self.dev_report),
                "baseline": self.baseline}

    def label_info(self) -> dict[str, Any]:
        return {"types": self.types, **self.head.label_info(self.tokenizer, self.types)}

    def checkpoint_config(self) -> RunConfig:
        """With the dev-calibrated threshold (or, never calibrated, the head's fixed fallback)."""
        pending = self.head.threshold_to_calibrate(self.cfg)
        values = self.calibrated or ({pending[0]: pending[1]} if pending else {})
        return apply_overrides(self.cfg, values, "calibrated on dev") if values else self.cfg

    @staticmethod
    def build_from_checkpoint(encoder: nn.Module, cfg: RunConfig, labels: dict[str, Any]) -> nn.Module:
        return head_of(cfg).build(encoder, cfg, labels)

    @classmethod
    def confusion_matrices(cls, cfg: RunConfig, labels: dict[str, Any],
                           report: dict[str, Any]) -> dict[str, tuple[list[list[int]], list[str]]]:
        out = {}
        bins = head_of(cfg).length_bins(cfg)
        if "length_bin_confusion" in report and bins:
            out["length_bin_confusion"] = (report["length_bin_confusion"],
                                           [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in bins])
        if "type_confusion" in report:
            out["type_confusion"] = (report["type_confusion"], ["O", *labels["types"]])
        return out

    @classmethod
    def serving(cls) -> TaskServing:
        from spanfirst.ner.serving import NerServing

        return NerServing()

    # -- model ------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        training = TrainingSpans([g for a in self.train_aligned for g in a.gold], len(self.train_aligned))
        return self.head.build(self.build_encoder(), self.cfg, self.label_info(), training)

    # -- data -------------------------------------------------------------------------------
    def train_items(self) -> list[AlignedExample]:
        return self.train_aligned

    def dev_items(self) -> list[AlignedExample]:
        return self.dev_aligned

    def collate(self, items: Sequence[AlignedExample]) -> dict[str, Any]:
        return collate(items, self.tokenizer.pad_token_id)

    def item_lengths(self, items: Sequence[AlignedExample]) -> list[int]:
        return [len(it.enc.input_ids) for it in items]

    # -- evaluation -------------------------------------------------------------------------
    def predict(self, model: nn.Module, items: Sequence[AlignedExample], indices: Sequence[int]) -> list[SentencePrediction]:
        self._model = model
        return decode_items(model, items, indices, self.types, self.tokenizer.pad_token_id,
                            self.cfg.train.eval_batch_size, self.head.length_bins(self.cfg))

    def evaluate(self, predictions: list[SentencePrediction]) -> tuple[dict[str, float], dict[str, Any]]:
        # Candidate recall ceiling: the gold lengths the head can produce at all (BIO: any length)
        lengths = self.head.span_lengths(self.cfg)
        gold = [(s, e) for a in self.dev_aligned for s, e, _ in a.gold]
        reach = structural_reach(gold, lengths) if self.dev_aligned and lengths is not None else None
        aligned, merged = self.per_text(predictions)
        calibration = self.calibrate(merged)
        bins = self.head.length_bins(self.cfg)
        report = ner_report(self.prepared["dev"], aligned, merged, self.types, len(bins) if bins else None, reach,
                            self.baseline, overlap=self.head.overlapping)
        if "candidate_recall" in report and len(merged) < len(predictions):
            # per model input: a gold span in an overlap is a candidate (or not) in each of its windows
            report["candidate_recall"] = (sum(p.gold_in_candidates for p in predictions)
                                          / max(sum(len(a.gold) for a in self.dev_aligned), 1))
        report["alignment"] = {"train": self.train_report.as_dict(), "dev": self.dev_report.as_dict()}
        if self.prepared.get("fitted"):
            report["fitted_to_training_data"] = self.prepared["fitted"]
        report["data"] = self.prepared.get("data", {})
        flat = summary(report)
        if calibration:
            report["calibration"] = calibration
            flat["calibrated_threshold"] = calibration["threshold"]
        return flat, report

    def calibrate(self, merged: list[SentencePrediction]) -> dict[str, Any] | None:
        """Pick the head's pending threshold on dev (strict F1) and drop the spans under it, in place."""
        pending = self.head.threshold_to_calibrate(self.cfg)
        if pending is None or not merged:
            return None
        key, _fallback = pending
        gold = [[(s.start, s.end, s.type) for s in ex.entities] for ex in self.prepared["dev"]]
        preds = sorted(merged, key=lambda p: p.index)
        # a capped calibration decode is exact only from the highest score some sentence lost on
        threshold, f1 = best_threshold(gold, [p.char_spans for p in preds], floor=max(p.exact_from for p in preds))
        for p in merged:
            keep = [i for i, (_, _, _, sc) in enumerate(p.char_spans) if sc >= threshold]
            p.char_spans = [p.char_spans[i] for i in keep]
            p.token_spans = [p.token_spans[i] for i in keep]
        self.calibrated = {key: threshold}
        return {"key": key, "threshold": threshold, "dev_strict_f1": f1}

    def merge_policy(self) -> tuple[float, str]:
        """How window predictions are settled: the predicting model's own policy."""
        from spanfirst.checkpoint import unwrap

        if self._model is None:
            raise RuntimeError("merge_policy() is known once predict() has run")
        return unwrap(self._model).merge_policy

    def per_text(self, predictions: list[SentencePrediction]) -> tuple[list[AlignedExample], list[SentencePrediction]]:
        """Dev features and predictions per dev text, merged exactly as the predictor merges them: a
        long text's windows into the whole text's content-token positions (gold placed in any window),
        and in every text an entity that several token spans cover reported once."""
        by_item = {p.index: p for p in predictions}
        groups: dict[int, list[int]] = {}
        for i, item in enumerate(self.dev_aligned):
            groups.setdefault(item.source, []).append(i)
        aligned, merged = [], []
        type_id = {t: k + 1 for k, t in enumerate(self.types)}
        for k, idx in enumerate(groups.values()):
            items, preds = [self.dev_aligned[i] for i in idx], [by_item[i] for i in idx]
            if items[0].window is None:  # the text fits: one window, token positions as they are
                n = len(items[0].enc.input_ids)
                windows, prefix = [(Window(0, n, 0, n), preds[0])], 0
            else:
                windows, prefix = [(it.window, p) for it, p in zip(items, preds)], len(self.windows.prefix)
            spans = merge_text(windows, prefix, self.merge_policy())
            at = [w.start - prefix for w, _ in windows]  # window token -> token of the text
            gold = sorted({(s + d, e + d, t) for it, d in zip(items, at) for s, e, t in it.gold})
            aligned.append(AlignedExample(items[0].enc, gold, source=items[0].source))
            counted = [p.candidates for p in preds if p.candidates is not None]
            found = [p.gold_in_candidates for p in preds if p.gold_in_candidates is not None]
            merged.append(SentencePrediction(
                index=k, token_spans=[(s, e, type_id.get(t, 0), sc) for s, e, t, sc, _, _ in spans],
                char_spans=[(a, b, t, sc) for _, _, t, sc, a, b in spans],
                candidates=sum(counted) if counted else None, gold_in_candidates=sum(found) if found else None,
                length_pairs=[pair for p in preds for pair in p.length_pairs],
                exact_from=max(p.exact_from for p in preds)))
        return aligned, merged
