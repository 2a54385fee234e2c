"""Where a span-first model's NER misses come from: every gold entity of a data set put in one
class (found, wrong type, wrong boundary, an edge inside a subword token, not a candidate, under
the threshold, suppressed), and every spurious prediction in one of three.

A subword tokenizer glues Korean particles and endings ("김흥국이" is "▁김", "흥", "국이" in XLM-R's
vocabulary), closing brackets ("54)") and the like onto entity edges; a span of whole tokens then
cannot end where the entity does. Those misses are told apart from boundaries the model got wrong.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from spanfirst.data.alignment import char_to_token_span, token_to_char_span
from spanfirst.data.types import Example
from spanfirst.ner.features import align_examples, collate
from spanfirst.ner.inference import trimmed_char_span
from spanfirst.ner.predictor import NerPredictor
from spanfirst.tasks import to_device

#: gold classes, in the order they are decided and reported
MISS_CLASSES = (
    "found",
    "right span, wrong type",
    "edge inside a token, letters attached (particles, endings)",
    "edge inside a token, other characters attached (brackets, digits, ...)",
    "wrong boundary (on token boundaries)",
    "not a candidate: start outside the top-k",
    "not a candidate: length not expanded",
    "candidate of the right type under the threshold",
    "candidate of another type, not output",
    "candidate over the threshold, suppressed by NMS or the output cap",
    "lost to max_length",
)
SPURIOUS_CLASSES = ("overlaps a gold entity of its type", "overlaps a gold entity of another type",
                    "overlaps no gold entity")


def _attached(text: str, outer: tuple[int, int], inner: tuple[int, int]) -> str:
    """The letters-or-not class of the characters ``outer`` has beyond ``inner``."""
    extra = text[outer[0]:inner[0]] + text[inner[1]:outer[1]]
    letters = extra.strip() and all(unicodedata.category(c).startswith("L") for c in extra.strip())
    return MISS_CLASSES[2] if letters else MISS_CLASSES[3]


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@torch.no_grad()
def classify(checkpoint: str | Path, examples: Sequence[Example], batch_size: int = 32) -> dict[str, Any]:
    """``{"misses": {class: count}, "spurious": {class: count}, "entities": n, "predicted": n}``
    for a span-first checkpoint on ``examples`` (texts longer than the model's window are cut:
    what they lose counts as lost to max_length)."""
    pred = NerPredictor.load(checkpoint)
    model, tok, cfg, types = pred.model, pred.tokenizer, pred.cfg, pred.types
    if getattr(model, "cfg", None) is None or not hasattr(model.cfg, "score_threshold"):
        raise ValueError(f"{checkpoint}: not a span-first checkpoint (the miss classes need its candidates)")
    threshold = float(model.cfg.score_threshold)
    items, _ = align_examples(tok, list(examples), types, cfg.model.max_length)
    misses, spurious = Counter({c: 0 for c in MISS_CLASSES}), Counter({c: 0 for c in SPURIOUS_CLASSES})
    n_pred = 0
    for lo in range(0, len(items), batch_size):
        chunk = items[lo : lo + batch_size]
        batch = to_device(collate(chunk, tok.pad_token_id), "cpu")
        dec = model.decode(batch["input_ids"], batch["attention_mask"], batch["text_mask"])
        c = dec.candidates
        for j, (it, ex) in enumerate(zip(chunk, examples[lo : lo + batch_size])):
            trims = dec.trims[j] if dec.trims is not None else [(0, 0)] * len(dec.spans[j])
            out = {(trimmed_char_span(it.enc, s, e, tr), types[t - 1]): (s, e)
                   for (s, e, t, _), tr in zip(dec.spans[j], trims)}
            n_pred += len(out)
            row = c.batch_index == j
            cand = {(int(s), int(e)): (float(sc), types[int(t) - 1]) for s, e, sc, t in zip(
                c.start[row], c.end[row], dec.candidate_scores[row], dec.candidate_types[row])}
            starts = {s for s, _ in cand}
            gold = {((g.start, g.end), g.type) for g in ex.entities}
            for (span, etype) in gold:
                misses[_miss_class(it.enc, span, etype, out, cand, starts, threshold, dec.trims is not None)] += 1
            for (span, etype) in out:
                if (span, etype) in gold:
                    continue
                hit = [t for g, t in gold if _overlaps(g, span)]
                spurious[SPURIOUS_CLASSES[0] if etype in hit else SPURIOUS_CLASSES[1] if hit
                         else SPURIOUS_CLASSES[2]] += 1
    return {"misses": dict(misses), "spurious": dict(spurious), "entities": sum(misses.values()), "predicted": n_pred}


def _miss_class(enc: Any, span: tuple[int, int], etype: str, out: dict, cand: dict, starts: set[int],
                threshold: float, trims: bool) -> str:
    """The class of one gold entity (see :data:`MISS_CLASSES`)."""
    if (span, etype) in out:
        return MISS_CLASSES[0]
    if span[1] > enc.covered_chars:
        return MISS_CLASSES[10]
    if any(s == span for s, t in out):
        return MISS_CLASSES[1]
    tok = char_to_token_span(enc, *span)
    if tok is None:
        return MISS_CLASSES[10]
    whole = token_to_char_span(enc, *tok)
    same_type = [(s, tokens) for (s, t), tokens in out.items() if t == etype and _overlaps(s, span)]
    # an edge inside a token: out of reach without edge trims, or the model found the tokens but
    # trimmed them wrong
    if whole != span and (not trims or any(tokens == tok for _, tokens in same_type)):
        return _attached(enc.text, whole, span)
    if same_type:
        return MISS_CLASSES[4]
    if tok not in cand:
        return MISS_CLASSES[5] if tok[0] not in starts else MISS_CLASSES[6]
    score, best = cand[tok]
    if best != etype:
        return MISS_CLASSES[8]
    return MISS_CLASSES[7] if score < threshold else MISS_CLASSES[9]
