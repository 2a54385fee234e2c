"""NER examples -> aligned token features -> padded batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from spanfirst.data.alignment import AlignedExample, AlignmentReport, Encoded, align_entities, edge_trims, encode
from spanfirst.data.types import Example
from spanfirst.ner.heads.common import GoldSpans
from spanfirst.ner.windows import TextWindows, Window


def align_examples(
    tokenizer, examples: Sequence[Example], types: list[str], max_length: int, chunk: int = 256,
    windows: TextWindows | None = None,
) -> tuple[list[AlignedExample], AlignmentReport]:
    """Tokenise and place every gold entity on tokens; returns the features and what was lost.

    A text longer than ``max_length`` is truncated, or with ``windows`` read as overlapping
    windows: one feature per window, each with the entities that lie wholly inside it (an entity
    in the overlap is gold in both). The report counts every entity once; one that no window holds
    whole (longer than the overlap) counts as truncated."""
    type_to_id = {t: i + 1 for i, t in enumerate(types)}  # 0 is "no entity"
    report = AlignmentReport()
    out: list[AlignedExample] = []
    for i in range(0, len(examples), chunk):
        part = examples[i : i + chunk]
        for j, (ex, encs) in enumerate(zip(part, _encode_part(tokenizer, [e.text for e in part], max_length, windows))):
            unknown = {s.type for s in ex.entities} - type_to_id.keys()
            if unknown:
                raise ValueError(f"example {ex.id or i + j}: entity types {sorted(unknown)} are not in the label set {types}")
            if len(encs) > 1:
                items, rep = _align_windows(encs, ex, type_to_id, i + j)
                out += items
            else:
                enc = encs[0][1]
                gold, rep = align_entities(enc, ex.entities, type_to_id)
                out.append(AlignedExample(enc, gold, source=i + j, trims=edge_trims(enc, ex.entities, gold, type_to_id)))
            report.add(rep)
    return out, report


def _encode_part(tokenizer, texts: list[str], max_length: int,
                 windows: TextWindows | None) -> list[list[tuple[Window | None, Encoded]]]:
    """Each text's encodings, tokenised once: its windows (one, identical to the truncating
    encoding, when it fits), or the truncated text without ``windows``; a blank text gets the
    truncating encoding (no tokens, no window)."""
    if windows is None:
        return [[(None, enc)] for enc in encode(tokenizer, texts, max_length)]
    per_text: list[list[tuple[Window | None, Encoded]]] = [[] for _ in texts]
    for j, win, enc in windows.encode(texts):
        per_text[j].append((win, enc))
    blank = [j for j, encs in enumerate(per_text) if not encs]
    if blank:
        for j, enc in zip(blank, encode(tokenizer, [texts[j] for j in blank], max_length)):
            per_text[j] = [(None, enc)]
    return per_text


def _align_windows(windows: list[tuple[Window, Encoded]], ex: Example, type_to_id: dict[str, int],
                   source: int) -> tuple[list[AlignedExample], AlignmentReport]:
    items, report, unplaced = [], AlignmentReport(examples_windowed=1), list(ex.entities)
    for win, enc in windows:
        chars = [ab for ab, m in zip(enc.offsets, enc.text_mask) if m]
        inside = [s for s in ex.entities if chars[0][0] <= s.start and s.end <= chars[-1][1]]
        gold = align_entities(enc, inside, type_to_id)[0]
        items.append(AlignedExample(enc, gold, win, source, edge_trims(enc, inside, gold, type_to_id)))
        held = set(inside)
        first_seen = [s for s in unplaced if s in held]  # each entity reported by the first window holding it
        unplaced = [s for s in unplaced if s not in held]
        rep = align_entities(enc, first_seen, type_to_id)[1]
        rep.examples_truncated = 0
        report.add(rep)
    report.entities += len(unplaced)
    report.truncated += len(unplaced)
    return items, report


def collate(items: Sequence[AlignedExample], pad_id: int) -> dict[str, object]:
    """Pad to the longest sequence in the batch; gold spans flattened with their batch index."""
    T = max(len(it.enc.input_ids) for it in items)
    B = len(items)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    attention = torch.zeros((B, T), dtype=torch.long)
    text_mask = torch.zeros((B, T), dtype=torch.bool)
    gb, gs, ge, gt, trims = [], [], [], [], []
    for i, it in enumerate(items):
        n = len(it.enc.input_ids)
        input_ids[i, :n] = torch.tensor(it.enc.input_ids)
        attention[i, :n] = 1
        text_mask[i, :n] = torch.tensor(it.enc.text_mask)
        for k, (s, e, t) in enumerate(it.gold):
            gb.append(i), gs.append(s), ge.append(e), gt.append(t)
            trims.append(it.trims[k] if it.trims else (0, 0))
    trim = torch.tensor(trims, dtype=torch.long).reshape(-1, 2)
    gold = GoldSpans(*(torch.tensor(v, dtype=torch.long) for v in (gb, gs, ge, gt)), trim[:, 0], trim[:, 1])
    return {"input_ids": input_ids, "attention_mask": attention, "text_mask": text_mask, "gold": gold}
