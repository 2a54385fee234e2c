"""NER examples -> aligned token features -> padded batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from spanfirst.data.alignment import AlignedExample, AlignmentReport, align_entities, encode
from spanfirst.data.types import Example
from spanfirst.ner.model import GoldSpans


def align_examples(
    tokenizer, examples: Sequence[Example], types: list[str], max_length: int, chunk: int = 256
) -> tuple[list[AlignedExample], AlignmentReport]:
    """Tokenise and place every gold entity on tokens; returns the features and what was lost."""
    type_to_id = {t: i + 1 for i, t in enumerate(types)}  # 0 is "no entity"
    report = AlignmentReport()
    out: list[AlignedExample] = []
    for i in range(0, len(examples), chunk):
        part = examples[i : i + chunk]
        for ex, enc in zip(part, encode(tokenizer, [e.text for e in part], max_length)):
            unknown = {s.type for s in ex.entities} - type_to_id.keys()
            if unknown:
                raise ValueError(f"example {ex.id or i}: entity types {sorted(unknown)} are not in the label set {types}")
            gold, rep = align_entities(enc, ex.entities, type_to_id)
            report.add(rep)
            out.append(AlignedExample(enc, gold))
    return out, report


def collate(items: Sequence[AlignedExample], pad_id: int) -> dict[str, object]:
    """Pad to the longest sequence in the batch; gold spans flattened with their batch index."""
    T = max(len(it.enc.input_ids) for it in items)
    B = len(items)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    attention = torch.zeros((B, T), dtype=torch.long)
    text_mask = torch.zeros((B, T), dtype=torch.bool)
    gb, gs, ge, gt = [], [], [], []
    for i, it in enumerate(items):
        n = len(it.enc.input_ids)
        input_ids[i, :n] = torch.tensor(it.enc.input_ids)
        attention[i, :n] = 1
        text_mask[i, :n] = torch.tensor(it.enc.text_mask)
        for s, e, t in it.gold:
            gb.append(i), gs.append(s), ge.append(e), gt.append(t)
    gold = GoldSpans(*(torch.tensor(v, dtype=torch.long) for v in (gb, gs, ge, gt)))
    return {"input_ids": input_ids, "attention_mask": attention, "text_mask": text_mask, "gold": gold}
