"""GLiNER-style head (Zaratiana et al., 2023): entity types are text prompts, spans match them.

The model puts ``[ENT] type1 [ENT] type2 ... [SEP]`` after the tokenizer's leading special
tokens (``<s>``/``[CLS]``) of every row, so the data pipeline stays the one all heads share:
``<s> [ENT] PS [ENT] LC [SEP] text </s>``. Hidden states of the text are sliced back to the
positions of the un-prompted input. A type is represented by its ``[ENT]`` token's hidden state
through an FFN, a span ``(i, j)`` of at most ``max_span_width`` tokens by ``FFN([h_i; h_j])``;
``sigmoid(span . type)`` is the probability that the span is an entity of that type
(``type_pooling: mean`` averages ``[ENT]`` with its name's tokens instead, for encoders without
pretraining).

Training: binary cross-entropy over every (span, prompted type) pair, the prompt of each batch
being its gold types plus sampled absent ("negative") types in shuffled order, so no type is
tied to a prompt position. Prediction prompts the whole type set, which :meth:`GlinerModel.set_types`
may replace by any other list of names. Decoding keeps each span's best type at or above the
threshold (``auto``: chosen on dev, as for every thresholded head),
then greedily best first: ``flat`` drops any span overlapping a kept one, ``nested`` only spans
crossing one (partly overlapping, neither inside the other).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spanfirst.config import GlinerConfig, RunConfig
from spanfirst.ner.heads.base import NerHead, TrainingSpans
from spanfirst.ner.heads.common import (
    CALIBRATION_FLOOR, calibration_cap, DecodedBatch, encode_text, GoldSpans, HeadOutput, Span, span_mask,
)
from spanfirst.ner.nms import Nesting, nms_1d

ENT_TOKEN, SEP_TOKEN = "[ENT]", "[SEP]"


def add_prompt_tokens(tokenizer: Any) -> int:
    """Add ``[ENT]`` and ``[SEP]`` as special tokens where missing; returns how many were added."""
    vocab = tokenizer.get_vocab()
    new = [t for t in (ENT_TOKEN, SEP_TOKEN) if t not in vocab]
    return tokenizer.add_tokens(new, special_tokens=True) if new else 0


@dataclass(frozen=True)
class TypePrompts:
    """The token ids of a type set's prompt, in any order of its types (saved in labels.json)."""

    names: list[str]
    pieces: list[list[int]]  # each name's token ids (no special tokens)
    ent_id: int
    sep_id: int
    lead: int  # special tokens the tokenizer puts before a text; the prompt goes after them

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, names: Sequence[str]) -> "TypePrompts":
        names = list(names)
        bad = [n for n in names if not isinstance(n, str) or not n.strip()]
        if not names or bad or len(set(names)) != len(names):
            raise ValueError(f"entity types must be distinct non-empty strings, got {names}")
        vocab = tokenizer.get_vocab()
        missing = [t for t in (ENT_TOKEN, SEP_TOKEN) if t not in vocab]
        if missing:
            raise ValueError(f"the tokenizer lacks the prompt tokens {missing} (see add_prompt_tokens)")
        probe = tokenizer("a", add_special_tokens=True, return_special_tokens_mask=True)["special_tokens_mask"]
        lead = probe.index(0)
        pieces = [list(tokenizer(n, add_special_tokens=False)["input_ids"]) for n in names]
        return cls(names, pieces, vocab[ENT_TOKEN], vocab[SEP_TOKEN], lead)

    @classmethod
    def from_dict(cls, names: Sequence[str], d: dict[str, Any]) -> "TypePrompts":
        return cls(list(names), [list(p) for p in d["pieces"]], int(d["ent_id"]), int(d["sep_id"]), int(d["lead"]))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "names"}

    def build(self, order: Sequence[int]) -> tuple[list[int], list[int]]:
        """(prompt ids, position of each listed type's ``[ENT]`` in them) for types ``order`` (0-based)."""
        ids: list[int] = []
        ent: list[int] = []
        for k in order:
            ent.append(len(ids))
            ids += [self.ent_id, *self.pieces[k]]
        return ids + [self.sep_id], ent

    def length(self) -> int:
        """Prompt tokens when every type is prompted."""
        return len(self.build(range(len(self.names)))[0])


def sample_prompt_types(present: set[int], num_types: int, max_neg_ratio: int, drop: bool = False,
                        rng: random.Random | None = None) -> list[int]:
    """A training batch's prompted types (0-based): its gold types ``present`` and up to
    ``randint(0, max_neg_ratio) * len(present)`` absent ones, shuffled; at least one type.

    ``drop`` keeps a random-length prefix of the shuffled list (GLiNER's random type drop)."""
    rng = rng or random.Random(random.getrandbits(32))  # the global RNG the training loop seeds
    positives = sorted(present)
    negatives = [k for k in range(num_types) if k not in present]
    n_neg = min(len(negatives), rng.randint(0, max_neg_ratio) * max(len(positives), 1))
    chosen = positives + rng.sample(negatives, n_neg)
    if not chosen:
        chosen = [rng.randrange(num_types)]
    rng.shuffle(chosen)
    if drop:
        chosen = chosen[: rng.randint(1, len(chosen))]
    return chosen


def greedy_spans(start: Tensor, end: Tensor, score: Tensor, nested: bool) -> list[int]:
    """Indices of the spans kept best first: flat drops any span overlapping a kept one, nested
    only spans crossing one. Identical spans never reach here (one best type per span)."""
    return nms_1d(start, end, score, iou_threshold=1.0, max_outputs=int(start.numel()),
                  nesting="partial" if nested else "forbid")


def decode_span_scores(probs: Tensor, mask: Tensor, threshold: float | str, nested: bool,
                       text_mask: Tensor | None = None) -> tuple[list[list[Span]], list[float] | None]:
    """Entities per sentence from span-type probabilities (B, T, W, K), span ``(i, i + w)``, and
    per sentence the lowest threshold they are exact for (None: any).

    Each span keeps its best type; spans inside ``mask`` scoring at least ``threshold`` are then
    taken greedily, best first (:func:`greedy_spans`). ``auto``: every span a dev calibration
    could keep (:func:`~spanfirst.ner.heads.common.calibration_cap`, ``text_mask`` sizes the cap);
    the greedy pass keeps this exact, since a span under a threshold never removes one above it."""
    auto = threshold == "auto"
    best, k = probs.max(dim=-1)  # (B, T, W)
    b, i, w = (mask.bool() & (best >= (CALIBRATION_FLOOR if auto else threshold))).nonzero(as_tuple=True)
    exact_from = None
    if auto:
        keep, exact_from = calibration_cap(b, best[b, i, w], text_mask)
        b, i, w = b[keep], i[keep], w[keep]
    b, i, e, k, score = b.cpu(), i.cpu(), (i + w).cpu(), k[b, i, w].cpu(), best[b, i, w].float().cpu()
    spans: list[list[Span]] = []
    for s in range(probs.shape[0]):
        idx = (b == s).nonzero().squeeze(1)
        keep = [int(idx[n]) for n in greedy_spans(i[idx], e[idx], score[idx], nested)]
        spans.append([(int(i[n]), int(e[n]), int(k[n]) + 1, float(score[n])) for n in keep])
    return spans, exact_from


class FFN(nn.Sequential):
    """Linear(in, 4 out) -> ReLU -> dropout -> Linear(4 out, out), GLiNER's projection."""

    def __init__(self, d_in: int, d_out: int, dropout: float) -> None:
        super().__init__(nn.Linear(d_in, 4 * d_out), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * d_out, d_out))


class SpanRepresentation(nn.Module):
    """``FFN([h_i; h_j])`` for every start ``i`` and end ``j = i + w``, ``w < max_width``: (B, T, W, H).

    The first linear layer is split over ``[h_i; h_j]`` so it runs once per token, not per span."""

    def __init__(self, hidden: int, max_width: int, dropout: float) -> None:
        super().__init__()
        self.max_width = max_width
        self.start = nn.Linear(hidden, 4 * hidden)
        self.end = nn.Linear(hidden, 4 * hidden, bias=False)
        self.out = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * hidden, hidden))

    def forward(self, h: Tensor) -> Tensor:
        T = h.shape[1]
        ends = (torch.arange(T, device=h.device).unsqueeze(1) + torch.arange(self.max_width, device=h.device))
        ends = ends.clamp(max=T - 1)  # (T, W); spans past the text are masked by the caller
        return self.out(self.start(h).unsqueeze(2) + self.end(h)[:, ends])


class GlinerModel(nn.Module):
    def __init__(self, encoder: nn.Module, prompts: TypePrompts, cfg: GlinerConfig, dropout: float = 0.1) -> None:
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.cfg = cfg
        self.train_prompts = prompts  # the training type set: what the loss asks for
        self.prompts = prompts  # what prediction asks for (set_types)
        self.num_types = len(prompts.names)
        self.dropout = nn.Dropout(dropout)
        self.span_rep = SpanRepresentation(hidden, cfg.max_span_width, dropout)
        self.type_rep = FFN(hidden, hidden, dropout)
        self.position_limit = _position_limit(encoder)

    def heads(self) -> list[nn.Module]:
        return [self.span_rep, self.type_rep]

    @property
    def type_names(self) -> list[str]:
        """The types the model is asked for at prediction; ``type_id`` t in decoded spans is ``type_names[t - 1]``."""
        return self.prompts.names

    def set_types(self, names: Sequence[str], tokenizer: Any) -> None:
        """Prompt these entity types from now on (any names; the tokenizer must be the model's)."""
        self.prompts = TypePrompts.from_tokenizer(tokenizer, names)

    @property
    def longest_span(self) -> int:
        return self.cfg.max_span_width

    @property
    def merge_policy(self) -> tuple[float, Nesting]:
        return 1.0, "partial" if self.cfg.decoding == "nested" else "forbid"

    def scores(self, input_ids: Tensor, attention_mask: Tensor, prompts: TypePrompts, order: Sequence[int]) -> Tensor:
        """Span-type logits (B, T, W, len(order)) with the types ``order`` of ``prompts`` prompted in that order."""
        B, T = input_ids.shape
        ids, ent = prompts.build(order)
        P, lead = len(ids), prompts.lead
        if T + P > self.position_limit:
            raise ValueError(f"{T} input tokens plus a type prompt of {P} tokens exceed the encoder's "
                             f"{self.position_limit} positions; lower model.max_length or prompt fewer types")
        prompt = torch.tensor(ids, dtype=input_ids.dtype, device=input_ids.device).expand(B, P)
        x = torch.cat([input_ids[:, :lead], prompt, input_ids[:, lead:]], dim=1)
        am = torch.cat([attention_mask[:, :lead], attention_mask.new_ones(B, P), attention_mask[:, lead:]], dim=1)
        h = self.dropout(encode_text(self.encoder, x, am))  # (B, T + P, H)
        types = self.type_rep(self._type_states(h[:, lead : lead + P], ent))  # (B, K', H)
        text = torch.cat([h[:, :lead], h[:, lead + P :]], dim=1)  # (B, T, H): the input's positions
        return torch.einsum("btwh,bkh->btwk", self.span_rep(text), types)

    def _type_states(self, prompt: Tensor, ent: list[int]) -> Tensor:
        """(B, K', H) from the prompt's hidden states (B, P, H): each ``[ENT]``'s (``type_pooling: ent``)
        or the mean over ``[ENT]`` and its name's tokens (``mean``)."""
        if self.cfg.type_pooling == "ent":
            return prompt[:, ent]
        P = prompt.shape[1]
        bounds = list(ent[1:]) + [P - 1]  # each segment ends where the next [ENT] (or the [SEP]) starts
        pool = torch.zeros(len(ent), P, dtype=prompt.dtype, device=prompt.device)
        for k, (a, b) in enumerate(zip(ent, bounds)):
            pool[k, a:b] = 1.0 / (b - a)
        return torch.einsum("kp,bph->bkh", pool, prompt)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, text_mask: Tensor,
                gold: GoldSpans | None = None) -> HeadOutput:
        """Without ``gold``: logits for the prediction types; with it: the loss over the training
        types (in training mode, a sampled prompt of them)."""
        if gold is None:
            every = range(len(self.prompts.names))
            return HeadOutput(None, self.scores(input_ids, attention_mask, self.prompts, every))
        if self.training:
            present = set((gold.type - 1).tolist())
            order = sample_prompt_types(present, self.num_types, self.cfg.max_neg_type_ratio, self.cfg.drop_types)
        else:
            order = list(range(self.num_types))
        logits = self.scores(input_ids, attention_mask, self.train_prompts, order)  # (B, T, W, K')
        W = self.cfg.max_span_width
        mask = span_mask(text_mask, W)  # (B, T, W)
        slot = torch.full((self.num_types + 1,), -1, dtype=torch.long, device=logits.device)
        slot[torch.tensor(order, device=logits.device) + 1] = torch.arange(len(order), device=logits.device)
        width = gold.end - gold.start
        k = slot[gold.type]
        fits = (width < W) & (k >= 0)  # gold longer than the width or of an unprompted type: not asked
        targets = torch.zeros_like(logits, dtype=torch.float32)
        targets[gold.batch[fits], gold.start[fits], width[fits], k[fits]] = 1.0
        keep = mask.unsqueeze(-1).expand_as(logits)
        loss = F.binary_cross_entropy_with_logits(logits.float()[keep], targets[keep], reduction="sum")
        return HeadOutput(loss / input_ids.shape[0], logits)

    @torch.no_grad()
    def decode(self, input_ids: Tensor, attention_mask: Tensor, text_mask: Tensor) -> DecodedBatch:
        logits = self.forward(input_ids, attention_mask, text_mask).logits  # (B, T, W, K)
        mask = span_mask(text_mask, self.cfg.max_span_width)
        spans, exact_from = decode_span_scores(torch.sigmoid(logits.float()), mask, self.cfg.threshold,
                                               self.cfg.decoding == "nested", text_mask)
        return DecodedBatch(spans, candidates_per_sentence=mask.sum(dim=(1, 2)).tolist(),
                            max_width=self.cfg.max_span_width, exact_from=exact_from)


def _position_limit(encoder: nn.Module) -> int:
    """Longest input the encoder's position embeddings take; RoBERTa-style encoders number
    positions from ``padding_idx + 1``."""
    config = encoder.config
    limit = int(getattr(config, "max_position_embeddings", 10**9))
    embeddings = getattr(encoder, "embeddings", None)
    if embeddings is not None and hasattr(embeddings, "create_position_ids_from_input_ids"):
        limit -= int(getattr(embeddings, "padding_idx", 0) or 0) + 1
    return limit


class GlinerHead(NerHead):
    """Types as ``[ENT] name`` prompts before the text; every span up to ``max_span_width`` scored
    against every prompted type, so the types can be changed at prediction time."""

    name = "gliner"
    open_types = True

    @classmethod
    def build(cls, encoder: nn.Module, cfg: RunConfig, labels: dict[str, Any],
              training: TrainingSpans | None = None) -> nn.Module:
        if "gliner_prompt" not in labels:
            raise ValueError("a GLiNER model's label info needs 'gliner_prompt' (its type prompt token ids)")
        return GlinerModel(encoder, TypePrompts.from_dict(labels["types"], labels["gliner_prompt"]), cfg.ner.gliner,
                           cfg.model.dropout)

    @classmethod
    def span_lengths(cls, cfg: RunConfig) -> list[int]:
        return list(range(1, cfg.ner.gliner.max_span_width + 1))

    @classmethod
    def threshold_to_calibrate(cls, cfg: RunConfig) -> tuple[str, float] | None:
        return ("ner.gliner.threshold", 0.5) if cfg.ner.gliner.threshold == "auto" else None

    @classmethod
    def prepare_tokenizer(cls, tokenizer: Any) -> None:
        add_prompt_tokens(tokenizer)

    @classmethod
    def label_info(cls, tokenizer: Any, types: Sequence[str]) -> dict[str, Any]:
        return {"gliner_prompt": TypePrompts.from_tokenizer(tokenizer, types).to_dict()}
