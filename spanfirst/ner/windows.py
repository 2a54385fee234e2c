"""Overlapping token windows for texts longer than the model's window, and merging their entities.

A text of ``n`` content tokens (no special tokens) is cut into windows of at most ``size``
tokens that overlap by at least ``overlap`` tokens. Every token is *owned* by exactly one
window: the boundary between two neighbours is the middle of their overlap, so a window reports
only entities that start in its own part, where it sees at least ``overlap // 2`` tokens of
context on the side of the cut. With ``overlap >= 2 * longest span`` an entity owned by a window
also ends inside it. The owned entities of all windows are then put through the same 1D NMS
(and nesting policy) the model uses inside a window, which settles the rare pair that overlaps
across an ownership boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spanfirst.data.alignment import Encoded, trim_offsets
from spanfirst.ner.nms import Nesting, nms_1d

# (first token, last token inclusive, type, score, first char, end char exclusive); tokens are
# content-token indices into the whole text.
WindowSpan = tuple[int, int, str, float, int, int]


@dataclass(frozen=True)
class Window:
    start: int  # first content token of the window
    end: int  # one past its last content token
    own_start: int  # the window reports entities starting in [own_start, own_end)
    own_end: int


def default_overlap(size: int, longest_span: int) -> int:
    """A quarter of the window, at least twice the longest span the model emits, at most half."""
    return max(0, min(size // 2, max(size // 4, 2 * longest_span)))


def plan_windows(n_tokens: int, size: int, overlap: int) -> list[Window]:
    """Windows covering ``n_tokens`` tokens; one window when the text fits.

    Windows step by ``size - overlap``; the last one is aligned to the end of the text (so it
    overlaps its neighbour by at least ``overlap``)."""
    if size < 1:
        raise ValueError(f"window size must be at least 1, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, {size}), got {overlap}")
    if n_tokens <= size:
        return [Window(0, n_tokens, 0, n_tokens)]
    step = size - overlap
    starts = list(range(0, n_tokens - size, step)) + [n_tokens - size]
    ends = [s + size for s in starts]
    # ownership boundary between windows k and k+1: the middle of their overlap
    cuts = [0] + [(starts[k + 1] + ends[k]) // 2 for k in range(len(starts) - 1)] + [n_tokens]
    return [Window(s, e, cuts[k], cuts[k + 1]) for k, (s, e) in enumerate(zip(starts, ends))]


def merge_window_spans(per_window: Sequence[tuple[Window, Sequence[WindowSpan]]], iou_threshold: float,
                       nesting: Nesting) -> list[WindowSpan]:
    """The entities of one text from its windows' predictions, sorted by position.

    Each window keeps the spans starting in its own part; NMS over the union (no output cap:
    each window was capped already) resolves spans that overlap across a boundary. Different
    token spans can cover the same characters (a tokenizer that splits one character into
    several pieces gives them all its offsets); such an entity is reported once, at its best score,
    and with ``nesting`` other than ``allow`` once whatever its types (the model keeps one type per span)."""
    owned = [sp for win, spans in per_window for sp in spans if win.own_start <= sp[0] < win.own_end]
    if len(per_window) > 1 and len(owned) > 1:
        keep = nms_1d([sp[0] for sp in owned], [sp[1] for sp in owned], [sp[3] for sp in owned],
                      iou_threshold, len(owned), nesting)
        owned = [owned[k] for k in keep]
    best: dict[tuple[int, int, str], WindowSpan] = {}
    for sp in owned:
        key = (sp[4], sp[5], sp[2] if nesting == "allow" else "")
        if key not in best or sp[3] > best[key][3]:
            best[key] = sp
    return sorted(best.values(), key=lambda sp: (sp[0], sp[1]))


class TextWindows:
    """A tokenizer's windows over texts: model inputs of at most ``max_length`` tokens (its special
    tokens included) whose offsets point into the whole text. Prediction reads long texts through
    them; training learns from every window of a long training text."""

    def __init__(self, tokenizer: Any, max_length: int, longest_span: int, overlap: int | None = None) -> None:
        self.tokenizer = tokenizer
        # The special tokens the tokenizer puts before and after a text (<s> ... </s>, [CLS] ... [SEP]).
        probe = tokenizer("a", add_special_tokens=True, return_special_tokens_mask=True)
        ids, special = probe["input_ids"], probe["special_tokens_mask"]
        body = [i for i, s in enumerate(special) if not s]
        self.prefix, self.suffix = ids[: body[0]], ids[body[-1] + 1 :]
        #: content tokens per window and the overlap of neighbouring windows
        self.size = max_length - len(self.prefix) - len(self.suffix)
        self.overlap = default_overlap(self.size, longest_span) if overlap is None else overlap

    def encode(self, texts: Sequence[str]) -> list[tuple[int, Window, Encoded]]:
        """(text index, window, model input) for every window of every text; none for blank texts.
        A text that fits is encoded exactly as :func:`spanfirst.data.alignment.encode` does."""
        if not texts:
            return []
        enc = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                             verbose=False)
        pre, post = len(self.prefix), len(self.suffix)
        out = []
        for i, text in enumerate(texts):
            ids = list(enc["input_ids"][i])
            if not ids:
                continue
            offsets = [trim_offsets(text, a, b) for a, b in enc["offset_mapping"][i]]
            for win in plan_windows(len(ids), self.size, self.overlap):
                offs = offsets[win.start : win.end]
                out.append((i, win, Encoded(
                    text, self.prefix + ids[win.start : win.end] + self.suffix,
                    [(0, 0)] * pre + offs + [(0, 0)] * post,
                    [False] * pre + [a < b for a, b in offs] + [False] * post,
                )))
        return out
