"""The protocol every NER head implements: what the task needs to build, train and decode it.

A head is two things. Its **model** (an ``nn.Module`` built on the encoder) has ``encoder`` (the
only part saved as the backbone), ``forward(input_ids, attention_mask, text_mask, gold=None)``
returning an output whose ``.loss`` is set when ``gold`` (:class:`~spanfirst.ner.heads.common.GoldSpans`)
is given, ``decode(...) -> DecodedBatch`` (spans plus the diagnostics the head has), ``heads()``,
and for windowed prediction ``longest_span`` (None: unbounded) and ``merge_policy`` (IoU
threshold, nesting). Its **spec**, a :class:`NerHead` subclass, tells the task the rest: how to
build the model, which span lengths it can produce, what it adds to the tokenizer and to the
checkpoint's label info. Specs are listed in :mod:`spanfirst.ner.heads.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from spanfirst.config import RunConfig


@dataclass(frozen=True)
class TrainingSpans:
    """What the training data says, for heads whose loss is shaped by it (class weights)."""

    gold: list[tuple[int, int, int]]  # every training (tok_start, tok_end, type_id from 1)
    sentences: int  # model inputs (windows of long texts counted)


class NerHead(ABC):
    name: ClassVar[str]
    #: whether predicted spans may overlap (the report's NMS-overlap rate); BIO output is flat
    overlapping: ClassVar[bool] = True
    #: whether the entity types are chosen at prediction time (types given as text prompts)
    open_types: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def build(cls, encoder: nn.Module, cfg: RunConfig, labels: dict[str, Any],
              training: TrainingSpans | None = None) -> nn.Module:
        """The model on ``encoder``. ``labels``: the task's label info (``types`` and what
        :meth:`label_info` added); ``training``: None when rebuilding a checkpoint's skeleton."""

    @classmethod
    def span_lengths(cls, cfg: RunConfig) -> list[int] | None:
        """Token lengths of the spans the head can output (for the structural recall ceiling and
        the windows' overlap); None: any length."""
        return None

    @classmethod
    def length_bins(cls, cfg: RunConfig) -> list[tuple[int, int]] | None:
        """A head with a length classifier: its bins (the report adds a length-bin confusion)."""
        return None

    @classmethod
    def threshold_to_calibrate(cls, cfg: RunConfig) -> tuple[str, float] | None:
        """(config key, value without a dev set) of a decision threshold the head leaves to dev
        calibration (the model then keeps every span and the task picks the threshold); None: none."""
        return None

    @classmethod
    def needs_fitting(cls, cfg: RunConfig) -> bool:
        """Whether settings are left to :meth:`fit` (e.g. ``ner.length_bins: auto``)."""
        return False

    @classmethod
    def fit(cls, cfg: RunConfig, lengths: Sequence[int]) -> dict[str, Any]:
        """Config overrides fitted to the training entities' token lengths (once, in the driver;
        the fitted config is what checkpoints save)."""
        return {}

    @classmethod
    def prepare_tokenizer(cls, tokenizer: Any) -> None:
        """Add the tokens the head needs (saved with the checkpoint's tokenizer)."""

    @classmethod
    def label_info(cls, tokenizer: Any, types: Sequence[str]) -> dict[str, Any]:
        """What a checkpoint needs besides ``types`` to rebuild the head."""
        return {}
