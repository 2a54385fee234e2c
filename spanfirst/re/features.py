"""RE examples -> marked, tokenised features with exact entity/marker token positions -> batches.

A sentence longer than ``model.max_length`` tokens is not cut at the end (which would lose an
entity that sits late in it): a window of tokens around both marked entities is kept instead,
and how often that happens is counted in a :class:`WindowReport`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from spanfirst.data.alignment import Encoded, char_to_token_span, trim_offsets
from spanfirst.data.types import RelationExample
from spanfirst.re.markers import Marked, mark

IGNORE = -100  # label of an unlabeled example


@dataclass
class ReFeature:
    """One model-ready example; token positions index ``input_ids`` (special tokens included)."""

    input_ids: list[int]
    subject: tuple[int, int]  # inclusive token span of the subject's own tokens
    object: tuple[int, int]
    subject_marker: int  # token of the subject's opening marker (its first token for "none")
    object_marker: int
    label: int = IGNORE
    windowed: bool = False
    # the entity types as ids into the training entity types (that many: a type not seen in training)
    subject_type: int = 0
    object_type: int = 0


@dataclass
class WindowReport:
    """How many sentences needed a window, and in how many the entities still did not fit whole."""

    examples: int = 0
    windowed: int = 0  # longer than max_length: a token window around both entities was kept
    split: int = 0  # entities too far apart for one window: two pieces were kept
    entity_cut: int = 0  # even the marked entities alone exceed max_length (their tails were cut)

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _encoded(text: str, ids: list[int], offsets: list[tuple[int, int]]) -> tuple[Encoded, int, int]:
    """Encoded with trimmed offsets; template tokens (<s>, </s>: offset (0, 0)) count as prefix/suffix."""
    n = len(ids)
    prefix = 0
    while prefix < n and tuple(offsets[prefix]) == (0, 0):
        prefix += 1
    suffix = 0
    while suffix < n - prefix and tuple(offsets[n - 1 - suffix]) == (0, 0):
        suffix += 1
    trimmed = [trim_offsets(text, a, b) for a, b in offsets]
    mask = [prefix <= i < n - suffix and a < b for i, (a, b) in enumerate(trimmed)]
    return Encoded(text, list(ids), trimmed, mask), prefix, suffix


def _locate(enc: Encoded, span: tuple[int, int], what: str, ex_id: str) -> tuple[int, int]:
    tok = char_to_token_span(enc, *span)
    if tok is None:
        raise ValueError(f"example {ex_id!r}: the {what} {enc.text[span[0]:span[1]]!r} falls on no token")
    return tok


def _window(lo: int, hi: int, regions: list[tuple[int, int]], budget: int) -> tuple[list[int], bool]:
    """At most ``budget`` indices of ``[lo, hi)``: the regions first (each from its start), then
    context by distance to the nearest region, so a single region ends up centred."""
    def key(i: int) -> tuple[int, int, int]:
        for r_lo, r_hi in regions:
            if r_lo <= i <= r_hi:
                return (0, i - r_lo, i)
        return (1, min(min(abs(i - r_lo), abs(i - r_hi)) for r_lo, r_hi in regions), i)

    in_regions = sum(r_hi - r_lo + 1 for r_lo, r_hi in regions)
    return sorted(sorted(range(lo, hi), key=key)[:budget]), in_regions > budget


def featurize_one(marked: Marked, ids: list[int], offsets: list[tuple[int, int]], max_length: int, label: int,
                  ex_id: str, report: WindowReport) -> ReFeature:
    enc, prefix, suffix = _encoded(marked.text, ids, offsets)
    subj = _locate(enc, marked.subject, "subject", ex_id)
    obj = _locate(enc, marked.object, "object", ex_id)
    s_mark = _locate(enc, (marked.subject_marker, marked.subject_marker + 1), "subject marker", ex_id)[0]
    o_mark = _locate(enc, (marked.object_marker, marked.object_marker + 1), "object marker", ex_id)[0]
    report.examples += 1
    n = len(ids)
    budget = max_length - prefix - suffix
    if n <= max_length:
        return ReFeature(list(ids), subj, obj, s_mark, o_mark, label)
    report.windowed += 1
    s_reg = _locate(enc, marked.subject_region, "subject", ex_id)
    o_reg = _locate(enc, marked.object_region, "object", ex_id)
    lo, hi = min(s_reg[0], o_reg[0]), max(s_reg[1], o_reg[1])
    if hi - lo + 1 <= budget:
        regions = [(lo, hi)]
    else:
        report.split += 1
        regions = sorted([s_reg, o_reg])
    kept, cut = _window(prefix, n - suffix, regions, budget)
    report.entity_cut += int(cut)
    new_index = {old: prefix + j for j, old in enumerate(kept)}

    def at(old: int) -> int:  # a cut position falls back to the last kept token before it
        while old not in new_index and old > prefix:
            old -= 1
        return new_index.get(old, prefix)

    new_ids = ids[:prefix] + [ids[i] for i in kept] + ids[n - suffix:]
    return ReFeature(new_ids, (at(subj[0]), at(subj[1])), (at(obj[0]), at(obj[1])), at(s_mark), at(o_mark),
                     label, windowed=True)


def featurize(tokenizer, examples: Sequence[RelationExample], style: str, vocab: Sequence[str],
              label_to_id: dict[str, int] | None, max_length: int, entity_types: Sequence[str] = (),
              chunk: int = 256) -> tuple[list[ReFeature], WindowReport]:
    """Mark, tokenise (untruncated) and window every example; ``label_to_id`` None: unlabeled.
    ``entity_types``: the training entity types, which the features' type ids index."""
    type_id = {t: i for i, t in enumerate(entity_types)}
    report = WindowReport()
    out: list[ReFeature] = []
    for lo in range(0, len(examples), chunk):
        part = examples[lo : lo + chunk]
        marked = [mark(ex, style, vocab) for ex in part]
        enc = tokenizer([m.text for m in marked], add_special_tokens=True, return_offsets_mapping=True,
                        truncation=False, verbose=False)
        for i, (ex, m) in enumerate(zip(part, marked)):
            label = label_to_id[ex.label] if label_to_id is not None else IGNORE
            feature = featurize_one(m, enc["input_ids"][i], enc["offset_mapping"][i], max_length, label,
                                    ex.id or str(lo + i), report)
            feature.subject_type = type_id.get(ex.subject.type, len(type_id))
            feature.object_type = type_id.get(ex.object.type, len(type_id))
            out.append(feature)
    return out, report


def collate(items: Sequence[ReFeature], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence in the batch; positions as (B, 2) spans and (B,) marker indices."""
    B, T = len(items), max(len(it.input_ids) for it in items)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    attention = torch.zeros((B, T), dtype=torch.long)
    for i, it in enumerate(items):
        input_ids[i, : len(it.input_ids)] = torch.tensor(it.input_ids, dtype=torch.long)
        attention[i, : len(it.input_ids)] = 1
    return {
        "input_ids": input_ids,  # (B, T)
        "attention_mask": attention,  # (B, T)
        "subject_span": torch.tensor([it.subject for it in items], dtype=torch.long),  # (B, 2)
        "object_span": torch.tensor([it.object for it in items], dtype=torch.long),  # (B, 2)
        "subject_marker": torch.tensor([it.subject_marker for it in items], dtype=torch.long),  # (B,)
        "object_marker": torch.tensor([it.object_marker for it in items], dtype=torch.long),  # (B,)
        "subject_type": torch.tensor([it.subject_type for it in items], dtype=torch.long),  # (B,)
        "object_type": torch.tensor([it.object_type for it in items], dtype=torch.long),  # (B,)
        "labels": torch.tensor([it.label for it in items], dtype=torch.long),  # (B,)
    }
