"""Decoding NER model inputs in batches, and putting a long text's windows back together.

Used by the task's evaluation (dev texts, windows of long ones) and by the predictor (raw texts),
so both read a long text the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from spanfirst.data.alignment import AlignedExample, Encoded, token_to_char_span
from spanfirst.ner.candidates import length_to_bin
from spanfirst.ner.evaluation import SentencePrediction
from spanfirst.ner.features import collate
from spanfirst.ner.heads.common import DecodedBatch
from spanfirst.ner.windows import Window, WindowSpan, merge_window_spans
from spanfirst.tasks import to_device


@torch.no_grad()
def decode_items(
    model: nn.Module, items: Sequence[AlignedExample], indices: Sequence[int], types: Sequence[str], pad_id: int,
    batch_size: int, length_bins: list[tuple[int, int]] | None = None,
) -> list[SentencePrediction]:
    """Decode ``items`` in length-sorted batches with any NER head; ``types[t - 1]`` names type id
    ``t``; ``indices[i]`` is item ``i``'s index in the predictions. Candidate diagnostics where the
    head has them; ``length_bins``: pair each gold span's length bin with the predicted one."""
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
            trims = dec.trims[j] if dec.trims is not None else [(0, 0)] * len(spans)
            chars = [(*trimmed_char_span(it.enc, s, e, trim), types[t - 1], sc)
                     for (s, e, t, sc), trim in zip(spans, trims)]
            pairs = []
            if dec.length_pred is not None and length_bins is not None:
                lengths = torch.tensor([e - s + 1 for s, e, _ in it.gold] or [1])
                gold_bins = length_to_bin(lengths, length_bins).tolist()
                pairs = [(gold_bins[k], int(dec.length_pred[j, s])) for k, (s, e, _) in enumerate(it.gold)]
            out.append(SentencePrediction(
                index=indices[order[lo + j]], token_spans=spans, char_spans=chars,
                candidates=None if dec.candidates_per_sentence is None else dec.candidates_per_sentence[j],
                gold_in_candidates=_gold_in_candidates(dec, j, it.gold), length_pairs=pairs,
                exact_from=dec.exact_from[j] if dec.exact_from is not None else 0.0,
            ))
    return out


def trimmed_char_span(enc: Encoded, start: int, end: int, trim: tuple[int, int]) -> tuple[int, int]:
    """The characters of a token span less ``trim`` (characters of its first / last token outside
    the entity), each trim kept within its token and the span never emptied."""
    a, b = token_to_char_span(enc, start, end)
    first_len = enc.offsets[start][1] - enc.offsets[start][0]
    last_len = enc.offsets[end][1] - enc.offsets[end][0]
    head, tail = min(trim[0], first_len - 1), min(trim[1], last_len - 1)
    if a + max(head, 0) >= b - max(tail, 0):
        return a, b
    return a + max(head, 0), b - max(tail, 0)


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


def text_spans(window: Window, prediction: SentencePrediction, prefix: int) -> list[WindowSpan]:
    """A window's predicted spans with token positions in the whole text's content tokens
    (``prefix``: the special tokens before the text in every window)."""
    d = window.start - prefix
    return [(s + d, e + d, t, sc, a, b)
            for (s, e, _tid, _sc), (a, b, t, sc) in zip(prediction.token_spans, prediction.char_spans)]


def merge_text(windows: Sequence[tuple[Window, SentencePrediction]], prefix: int,
               merge_policy: tuple[float, str]) -> list[WindowSpan]:
    """One text's entities from the predictions of its windows, merged by the model's policy."""
    return merge_window_spans([(w, text_spans(w, p, prefix)) for w, p in windows], *merge_policy)
