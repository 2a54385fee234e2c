"""Tasks plug into the one training loop through this small interface and a registry."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from spanfirst.checkpoint import Checkpoint
from spanfirst.config import RunConfig


class Task(ABC):
    """One model family (NER, RE): data preparation in the driver, model, batches, evaluation, and
    what serving needs (:meth:`serving`).

    ``prepare`` runs once in the driver (reads and validates files, so errors surface before
    any worker starts) and returns a picklable dict; each worker then builds the task from it.
    """

    name: ClassVar[str]
    main_metric: ClassVar[str]  # key of evaluate()'s flat metrics that selects checkpoints

    def __init__(self, cfg: RunConfig, prepared: dict[str, Any], features: dict[str, Any] | None = None) -> None:
        """``features``: what :meth:`features` returned for a run whose :meth:`feature_settings`
        were the same (a sweep's other trial); built from ``prepared`` when None."""
        self.cfg = cfg
        self.prepared = prepared

    # -- data (driver) ------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def read_split(cls, cfg: RunConfig, path: str | None, limit: int | None) -> Any:
        """One data file read with the config's format settings (nothing when ``path`` is empty)."""

    @classmethod
    @abstractmethod
    def prepared(cls, cfg: RunConfig, train: Any, dev: Any, checkpoint: Checkpoint | None) -> dict[str, Any]:
        """What workers build the task from; with ``checkpoint``: its label order and its backbone."""

    @classmethod
    def prepare(cls, cfg: RunConfig) -> dict[str, Any]:
        """For training: train and dev read (capped by ``data.max_*_examples``), labels derived."""
        if not cfg.data.train:
            raise ValueError("data.train: a training file is required")
        train = cls.read_split(cfg, cfg.data.train, cfg.data.max_train_examples)
        dev = cls.read_split(cfg, cfg.data.dev, cfg.data.max_dev_examples)
        return cls._with_summaries(cfg, train, dev, cls.prepared(cfg, train, dev, None))

    @classmethod
    def prepare_eval(cls, cfg: RunConfig, checkpoint: Checkpoint, dev_limit: int | None = None) -> dict[str, Any]:
        """For evaluating a saved checkpoint on ``data.dev`` (all of it, or its first ``dev_limit``
        examples; train: for the baseline)."""
        train = cls.read_split(cfg, cfg.data.train, cfg.data.max_train_examples)
        dev = cls.read_split(cfg, cfg.data.dev, dev_limit)
        return cls._with_summaries(cfg, train, dev, cls.prepared(cfg, train, dev, checkpoint))

    @classmethod
    def summarize(cls, path: str, read: Any) -> dict[str, Any]:
        """What :meth:`read_split` read from ``path`` (:mod:`spanfirst.data.summary`)."""
        return {}

    @classmethod
    def _with_summaries(cls, cfg: RunConfig, train: Any, dev: Any, prepared: dict[str, Any]) -> dict[str, Any]:
        """``prepared["data"]``: the summary of each split read (the report's and MLflow's data section)."""
        prepared["data"] = {split: cls.summarize(path, read) for split, path, read in
                            (("train", cfg.data.train, train), ("dev", cfg.data.dev, dev)) if path}
        return prepared

    @classmethod
    @abstractmethod
    def feature_settings(cls, cfg: RunConfig, prepared: dict[str, Any]) -> dict[str, Any]:
        """Every value the tokenised training and dev features depend on (JSON-able): two runs
        with equal settings may share :meth:`features` (:mod:`spanfirst.train.features`)."""

    @abstractmethod
    def features(self) -> dict[str, Any]:
        """The tokenised, aligned data this task built (picklable), for the constructor's ``features``."""

    # -- model --------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self) -> nn.Module:
        """A fresh model for training (loss shaped by this task's training data)."""

    @staticmethod
    @abstractmethod
    def build_from_checkpoint(encoder: nn.Module, cfg: RunConfig, labels: dict[str, Any]) -> nn.Module:
        """The model skeleton a checkpoint's heads load into (``labels``: its label info)."""

    def build_encoder(self) -> nn.Module:
        from spanfirst.backbone import build_encoder

        model = self.cfg.model
        return build_encoder(self.prepared["backbone_path"], self.tokenizer, model.lora, model.freeze_word_embeddings)

    def label_info(self) -> dict[str, Any]:
        """What a checkpoint needs besides weights to decode (saved in its labels.json)."""
        return {}

    def checkpoint_config(self) -> RunConfig:
        """The config a checkpoint saves: this run's, with what was fitted or calibrated on the data."""
        return self.cfg

    # -- batches ------------------------------------------------------------------------------
    @abstractmethod
    def train_items(self) -> list[Any]: ...

    @abstractmethod
    def dev_items(self) -> list[Any]: ...

    @abstractmethod
    def collate(self, items: Sequence[Any]) -> dict[str, Any]: ...

    def item_lengths(self, items: Sequence[Any]) -> list[int] | None:
        """Each item's padded length (tokens), for ``train.group_by_length``; None: not groupable."""
        return None

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """Task models return an output with ``.loss`` when the batch carries targets."""
        return model(**batch).loss

    # -- evaluation ---------------------------------------------------------------------------
    @abstractmethod
    def predict(self, model: nn.Module, items: Sequence[Any], indices: Sequence[int]) -> list[Any]:
        """Predictions for ``items`` (dev examples ``indices``), picklable for gathering."""

    @abstractmethod
    def evaluate(self, predictions: list[Any]) -> tuple[dict[str, float], dict[str, Any]]:
        """(flat scalar metrics incl. ``main_metric``, full report) from all dev predictions."""

    @classmethod
    def confusion_matrices(cls, cfg: RunConfig, labels: dict[str, Any],
                           report: dict[str, Any]) -> dict[str, tuple[list[list[int]], list[str]]]:
        """Named (matrix, axis labels) pairs from an evaluation report, for JSON/PNG output; needs
        only the config and label info, so a checkpoint's report is drawn without its data."""
        return {}

    # -- serving ------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def serving(cls) -> "TaskServing":
        """What serving and batch prediction need: request schema, predictor, response."""


class TaskServing(ABC):
    """A task's side of ``mlflow models serve`` and ``pipelines/predict.py``: declared next to its
    model, so the serving code never switches on task names."""

    #: request columns (all required)
    columns: ClassVar[tuple[str, ...]]

    @abstractmethod
    def input_example(self) -> Any:
        """A request a model of this task answers (logged with the model; run once before logging)."""

    @abstractmethod
    def signature(self, labels: dict[str, Any]) -> Any:
        """The MLflow model signature for a checkpoint with this label info."""

    def metadata(self, labels: dict[str, Any]) -> dict[str, Any]:
        """Label order and the like, logged as the MLflow model's metadata."""
        return {}

    @abstractmethod
    def load_predictor(self, checkpoint: Checkpoint, device: str) -> Any: ...

    @abstractmethod
    def predict(self, predictor: Any, frame: Any, params: dict[str, Any] | None, max_batch_size: int,
                batch_size: int) -> Any:
        """The response frame for a request frame; raises ``BadRequest`` naming the field."""

    @abstractmethod
    def predict_file(self, model: Any, source: Path, out: Path, options: dict[str, Any]) -> int:
        """``pipelines/predict.py``: every record of ``source`` through the serving ``model``
        (``.predict(frame, params)``, ``.max_batch_size``, ``.impl.predictor``) into ``out``;
        returns the number of records."""


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move a batch's tensors (also those inside dataclass values) to ``device``."""

    def move(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.to(device, non_blocking=True)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return dataclasses.replace(v, **{f.name: move(getattr(v, f.name)) for f in dataclasses.fields(v)})
        return v

    return {k: move(v) for k, v in batch.items()}


#: Every task: name -> "module:Class", imported on first use (so importing this module imports no
#: task package, and no task package imports another). Adding a task is one line here.
TASKS: dict[str, str] = {
    "ner": "spanfirst.ner.task:NerTask",
    "re": "spanfirst.re.task:ReTask",
}


def get_task(name: str) -> type[Task]:
    """The task class registered as ``name``; an import error in its package propagates."""
    import importlib

    if name not in TASKS:
        raise KeyError(f"unknown task '{name}'; known: {sorted(TASKS)}")
    module, _, attr = TASKS[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Task)) or cls.name != name:
        raise TypeError(f"TASKS['{name}'] = {TASKS[name]!r} is not a Task subclass named '{name}'")
    return cls
