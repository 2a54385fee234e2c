"""NER as a task of the training loop: span-first or a peer head (``model.head``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from spanfirst.backbone import TINY, apply_lora, ensure_tiny_backbone, load_encoder, load_tokenizer
from spanfirst.config import RunConfig
from spanfirst.data.alignment import AlignedExample, token_to_char_span
from spanfirst.data.readers import label_set, read_ner
from spanfirst.losses import inverse_log_frequency_weights
from spanfirst.ner.baseline import DictionaryBaseline
from spanfirst.ner.candidates import length_to_bin, structural_reach
from spanfirst.ner.evaluation import SentencePrediction, ner_report, summary
from spanfirst.ner.features import align_examples, collate
from spanfirst.ner.windows import TextWindows, merge_window_spans
from spanfirst.ner.heads.bio import BioTaggerModel
from spanfirst.ner.heads.gliner import GlinerModel, TypePrompts, add_prompt_tokens
from spanfirst.ner.heads.global_pointer import GlobalPointerModel
from spanfirst.ner.model import DecodedBatch, SpanFirstModel
from spanfirst.tasks import Task, register, to_device


def read_split(cfg: RunConfig, path: str | None, limit: int | None):
    if not path:
        return []
    d = cfg.data
    return read_ner(
        path, d.format, conll_token_column=d.conll_token_column, conll_tag_column=d.conll_tag_column,
        conll_scheme=d.conll_scheme, limit=limit,
    )


def resolve_backbone(cfg: RunConfig, train_texts: list[str]) -> str:
    """Hub name or path as given; ``tiny`` -> the offline tiny backbone built from ``train_texts``."""
    if cfg.model.backbone == TINY:
        return str(ensure_tiny_backbone(train_texts, cfg.model.tiny))
    return cfg.model.backbone


def build_ner_model(encoder: nn.Module, cfg: RunConfig, labels: dict[str, Any],
                    length_weights: torch.Tensor | None = None, type_weights: torch.Tensor | None = None) -> nn.Module:
    """The ``model.head`` model on ``encoder`` for the label info of a task or checkpoint.

    The class weights shape span-first's training loss only (a checkpoint restores them)."""
    head, n, dropout = cfg.model.head, len(labels["types"]), cfg.model.dropout
    if head == "span_first":
        return SpanFirstModel(encoder, n, cfg.ner, dropout, length_weights, type_weights)
    if head == "bio":
        return BioTaggerModel(encoder, n, dropout)
    if head in ("global_pointer", "efficient_global_pointer"):
        return GlobalPointerModel(encoder, n, cfg.ner.global_pointer, head == "efficient_global_pointer", dropout)
    if head == "gliner":
        if "gliner_prompt" not in labels:
            raise ValueError("labels.json: a GLiNER model needs 'gliner_prompt' (its type prompt token ids)")
        return GlinerModel(encoder, TypePrompts.from_dict(labels["types"], labels["gliner_prompt"]), cfg.ner.gliner,
                           dropout)
    raise ValueError(f"model.head: unknown head '{head}'")


def scored_width(cfg: RunConfig) -> int | None:
    """For heads that score every span up to a width (GlobalPointer, GLiNER): that width."""
    if cfg.model.head in ("global_pointer", "efficient_global_pointer"):
        return cfg.ner.global_pointer.max_span_width
    if cfg.model.head == "gliner":
        return cfg.ner.gliner.max_span_width
    return None


@register
class NerTask(Task):
    name = "ner"
    main_metric = "strict_f1"

    @classmethod
    def prepare(cls, cfg: RunConfig) -> dict[str, Any]:
        if not cfg.data.train:
            raise ValueError("data.train: a training file is required")
        train = read_split(cfg, cfg.data.train, cfg.data.max_train_examples)
        dev = read_split(cfg, cfg.data.dev, cfg.data.max_dev_examples)
        types = list(cfg.data.labels) or label_set(train + dev)
        return {"train": train, "dev": dev, "types": types,
                "backbone_path": resolve_backbone(cfg, [e.text for e in train])}

    def __init__(self, cfg: RunConfig, prepared: dict[str, Any]) -> None:
        super().__init__(cfg, prepared)
        self.types: list[str] = prepared["types"]
        self.tokenizer = load_tokenizer(prepared["backbone_path"])
        if cfg.model.head == "gliner":
            add_prompt_tokens(self.tokenizer)  # [ENT], [SEP]: saved with the checkpoint's tokenizer
        max_len = cfg.model.max_length
        # Texts longer than the window: read as overlapping windows, with the overlap the predictor uses
        longest = max(cfg.ner.candidate_lengths()) if cfg.model.head == "span_first" else scored_width(cfg) or 0
        self.windows = TextWindows(self.tokenizer, max_len, longest)
        self.train_aligned, self.train_report = align_examples(
            self.tokenizer, prepared["train"], self.types, max_len,
            windows=self.windows if cfg.data.long_train_texts == "window" else None)
        self.dev_aligned, self.dev_report = align_examples(self.tokenizer, prepared["dev"], self.types, max_len,
                                                           windows=self.windows)
        self.merge_policy: tuple[float, str] = (cfg.ner.nms_iou, cfg.ner.nesting)  # the model's, once it predicts
        self.baseline = DictionaryBaseline().fit(prepared["train"])

    def label_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"types": self.types}
        if self.cfg.model.head == "gliner":
            info["gliner_prompt"] = TypePrompts.from_tokenizer(self.tokenizer, self.types).to_dict()
        return info

    @classmethod
    def prepare_eval(cls, cfg: RunConfig, labels: dict[str, Any], backbone_path: str) -> dict[str, Any]:
        train = read_split(cfg, cfg.data.train, cfg.data.max_train_examples)
        dev = read_split(cfg, cfg.data.dev, None)
        return {"train": train, "dev": dev, "types": labels["types"], "backbone_path": backbone_path}

    build_from_checkpoint = staticmethod(lambda encoder, cfg, labels: build_ner_model(encoder, cfg, labels))

    def confusion_matrices(self, report: dict[str, Any]) -> dict[str, tuple[list[list[int]], list[str]]]:
        out = {}
        if "length_bin_confusion" in report:  # span-first's length head only
            bins = [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in self.cfg.ner.length_bins]
            out["length_bin_confusion"] = (report["length_bin_confusion"], bins)
        if "type_confusion" in report:
            out["type_confusion"] = (report["type_confusion"], ["O", *self.types])
        return out

    # -- model ------------------------------------------------------------------------------
    def class_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        ner = self.cfg.ner
        gold = [g for a in self.train_aligned for g in a.gold]
        if ner.length_class_weights is not None:
            length_w = torch.tensor(ner.length_class_weights, dtype=torch.float)
        else:
            lengths = torch.tensor([e - s + 1 for s, e, _ in gold] or [1])
            counts = torch.bincount(length_to_bin(lengths, ner.length_bins), minlength=len(ner.length_bins))
            length_w = inverse_log_frequency_weights(counts)
        if ner.type_class_weights == "auto":
            type_counts = Counter(t for _, _, t in gold)
            counts = torch.tensor([ner.hard_negatives * len(self.train_aligned)]
                                  + [type_counts.get(i + 1, 0) for i in range(len(self.types))])
            type_w = inverse_log_frequency_weights(counts)
        else:
            type_w = torch.ones(len(self.types) + 1)
        return length_w.float(), type_w.float()

    def build_model(self) -> nn.Module:
        encoder = load_encoder(self.prepared["backbone_path"])
        added = len(self.tokenizer) > encoder.get_input_embeddings().num_embeddings  # GLiNER's prompt tokens
        if added:
            encoder.resize_token_embeddings(len(self.tokenizer))
        if self.cfg.model.lora.enabled:
            encoder = apply_lora(encoder, self.cfg.model.lora, train_embeddings=added)
        length_w, type_w = self.class_weights() if self.cfg.model.head == "span_first" else (None, None)
        return build_ner_model(encoder, self.cfg, self.label_info(), length_w, type_w)

    # -- data -------------------------------------------------------------------------------
    def train_items(self) -> list[AlignedExample]:
        return self.train_aligned

    def dev_items(self) -> list[AlignedExample]:
        return self.dev_aligned

    def collate(self, items: Sequence[AlignedExample]) -> dict[str, Any]:
        return collate(items, self.tokenizer.pad_token_id)

    # -- evaluation -------------------------------------------------------------------------
    def predict(self, model: nn.Module, items: Sequence[AlignedExample], indices: Sequence[int]) -> list[SentencePrediction]:
        self.merge_policy = getattr(model, "merge_policy", self.merge_policy)
        return predict_aligned(model, items, indices, self.types, self.tokenizer.pad_token_id,
                               self.cfg.train.eval_batch_size, self.cfg.ner.length_bins)

    def evaluate(self, predictions: list[SentencePrediction]) -> tuple[dict[str, float], dict[str, Any]]:
        ner, head = self.cfg.ner, self.cfg.model.head
        # Candidate recall ceiling: gold lengths span-first's representative lengths reach, or those
        # within the width every span of which an exhaustive head scores; BIO has no candidates.
        width = scored_width(self.cfg)
        lengths = ner.candidate_lengths() if head == "span_first" else range(1, width + 1) if width else None
        gold = [(s, e) for a in self.dev_aligned for s, e, _ in a.gold]
        reach = structural_reach(gold, lengths) if self.dev_aligned and lengths is not None else None
        aligned, merged = self.per_text(predictions)
        report = ner_report(self.prepared["dev"], aligned, merged, self.types,
                            len(ner.length_bins) if head == "span_first" else None, reach, self.baseline,
                            overlap=head != "bio")
        if "candidate_recall" in report and len(merged) < len(predictions):
            # per model input: a gold span in an overlap is a candidate (or not) in each of its windows
            report["candidate_recall"] = (sum(p.gold_in_candidates for p in predictions)
                                          / max(sum(len(a.gold) for a in self.dev_aligned), 1))
        report["alignment"] = {"train": self.train_report.as_dict(), "dev": self.dev_report.as_dict()}
        return summary(report), report

    def per_text(self, predictions: list[SentencePrediction]) -> tuple[list[AlignedExample], list[SentencePrediction]]:
        """Dev features and predictions per dev text: a long text's windows merged as the predictor
        merges them (spans in the whole text's content-token positions, gold placed in any window)."""
        by_item = {p.index: p for p in predictions}
        groups: dict[int, list[int]] = {}
        for i, item in enumerate(self.dev_aligned):
            groups.setdefault(item.source, []).append(i)
        aligned, merged = [], []
        shift = len(self.windows.prefix)
        type_id = {t: k + 1 for k, t in enumerate(self.types)}
        for k, idx in enumerate(groups.values()):
            if len(idx) == 1:
                aligned.append(self.dev_aligned[idx[0]])
                merged.append(replace(by_item[idx[0]], index=k))
                continue
            items, preds = [self.dev_aligned[i] for i in idx], [by_item[i] for i in idx]
            at = [it.window.start - shift for it in items]  # window token -> content token of the text
            per_window = [(it.window, [(s + d, e + d, t, sc, a, b) for (s, e, _, _), (a, b, t, sc)
                                       in zip(p.token_spans, p.char_spans)]) for it, p, d in zip(items, preds, at)]
            spans = merge_window_spans(per_window, *self.merge_policy)
            gold = sorted({(s + d, e + d, t) for it, d in zip(items, at) for s, e, t in it.gold})
            aligned.append(AlignedExample(items[0].enc, gold, source=items[0].source))
            counted = [p.candidates for p in preds if p.candidates is not None]
            found = [p.gold_in_candidates for p in preds if p.gold_in_candidates is not None]
            merged.append(SentencePrediction(
                index=k, token_spans=[(s, e, type_id.get(t, 0), sc) for s, e, t, sc, _, _ in spans],
                char_spans=[(a, b, t, sc) for _, _, t, sc, a, b in spans],
                candidates=sum(counted) if counted else None, gold_in_candidates=sum(found) if found else None,
                length_pairs=[pair for p in preds for pair in p.length_pairs]))
        return aligned, merged


def predict_aligned(
    model: nn.Module, items: Sequence[AlignedExample], indices: Sequence[int], types: list[str], pad_id: int,
    batch_size: int, length_bins: list[tuple[int, int]],
) -> list[SentencePrediction]:
    """Decode ``items`` in length-sorted batches with any NER head; ``types[t - 1]`` names type id
    ``t``. Candidate and length-bin diagnostics where the head has them."""
    device = next(model.parameters()).device
    order = sorted(range(len(items)), key=lambda i: len(items[i].enc.input_ids))
    out: list[SentencePrediction] = []
    model.eval()
    for lo in range(0, len(order), batch_size):
        chunk = [items[i] for i in order[lo : lo + batch_size]]
        batch = to_device(collate(chunk, pad_id), device)
        dec = model.decode(batch["input_ids"], batch["attention_mask"], batch["text_mask"])
        for j, it in enumerate(chunk):
            spans = dec.spans[j]
            chars = [(*token_to_char_span(it.enc, s, e), types[t - 1], sc) for s, e, t, sc in spans]
            pairs = []
            if dec.length_pred is not None:
                lengths = torch.tensor([e - s + 1 for s, e, _ in it.gold] or [1])
                gold_bins = length_to_bin(lengths, length_bins).tolist()
                pairs = [(gold_bins[k], int(dec.length_pred[j, s])) for k, (s, e, _) in enumerate(it.gold)]
            out.append(SentencePrediction(
                index=indices[order[lo + j]], token_spans=spans, char_spans=chars,
                candidates=None if dec.candidates_per_sentence is None else dec.candidates_per_sentence[j],
                gold_in_candidates=_gold_in_candidates(dec, j, it.gold), length_pairs=pairs,
            ))
    return out


def _gold_in_candidates(dec: DecodedBatch, j: int, gold: list[tuple[int, int, int]]) -> int | None:
    """How many of sentence ``j``'s gold spans the head scored (None: the head scores no spans)."""
    if dec.candidates is not None:
        c = dec.candidates
        row = c.batch_index == j
        scored = set(zip(c.start[row].tolist(), c.end[row].tolist()))
        return sum((s, e) in scored for s, e, _ in gold)
    if dec.max_width is not None:
        return sum(e - s + 1 <= dec.max_width for s, e, _ in gold)
    return None
