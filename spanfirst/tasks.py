"""Tasks plug into the one training loop through this small interface and a registry."""

from __future__ import annotations

import copy
import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from spanfirst.config import RunConfig, config_from_dict, save_config

CHECKPOINT_VERSION = 1


class Task(ABC):
    """One model family (NER, RE): data preparation in the driver, model, batches, evaluation.

    ``prepare`` runs once in the driver (reads and validates files, so errors surface before
    any worker starts) and returns a picklable dict; each worker then builds the task from it.
    """

    name: ClassVar[str]
    main_metric: ClassVar[str]  # key of evaluate()'s flat metrics that selects checkpoints

    def __init__(self, cfg: RunConfig, prepared: dict[str, Any]) -> None:
        self.cfg = cfg
        self.prepared = prepared

    @classmethod
    @abstractmethod
    def prepare(cls, cfg: RunConfig) -> dict[str, Any]: ...

    @abstractmethod
    def build_model(self) -> nn.Module: ...

    @abstractmethod
    def train_items(self) -> list[Any]: ...

    @abstractmethod
    def dev_items(self) -> list[Any]: ...

    @abstractmethod
    def collate(self, items: Sequence[Any]) -> dict[str, Any]: ...

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """Task models return an output with ``.loss`` when the batch carries targets."""
        return model(**batch).loss

    @abstractmethod
    def predict(self, model: nn.Module, items: Sequence[Any], indices: Sequence[int]) -> list[Any]:
        """Predictions for ``items`` (dev examples ``indices``), picklable for gathering."""

    @abstractmethod
    def evaluate(self, predictions: list[Any]) -> tuple[dict[str, float], dict[str, Any]]:
        """(flat scalar metrics incl. ``main_metric``, full report) from all dev predictions."""

    def label_info(self) -> dict[str, Any]:
        """What a checkpoint needs besides weights to decode (saved as labels.json)."""
        return {}

    @classmethod
    def prepare_eval(cls, cfg: RunConfig, labels: dict[str, Any], backbone_path: str) -> dict[str, Any]:
        """``prepare`` for evaluating a saved checkpoint: its labels and its own backbone folder."""
        prepared = cls.prepare(cfg)
        prepared.update({k: v for k, v in labels.items() if k not in ("task", "version")})
        prepared["backbone_path"] = backbone_path
        return prepared

    @staticmethod
    def build_from_checkpoint(encoder: nn.Module, cfg: RunConfig, labels: dict[str, Any]) -> nn.Module:
        """The model skeleton a checkpoint's heads load into."""
        raise NotImplementedError

    def confusion_matrices(self, report: dict[str, Any]) -> dict[str, tuple[list[list[int]], list[str]]]:
        """Named (matrix, axis labels) pairs from an evaluation report, for JSON/PNG output."""
        return {}


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move a batch's tensors (also those inside dataclass values) to ``device``."""

    def move(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.to(device, non_blocking=True)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return dataclasses.replace(v, **{f.name: move(getattr(v, f.name)) for f in dataclasses.fields(v)})
        return v

    return {k: move(v) for k, v in batch.items()}


_REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    _REGISTRY[cls.name] = cls
    return cls


def get_task(name: str) -> type[Task]:
    if name not in _REGISTRY:
        # Tasks register on import; import the built-in ones lazily.
        import spanfirst.ner.task  # noqa: F401

        try:
            import spanfirst.re.task  # noqa: F401
        except ImportError:
            pass
    if name not in _REGISTRY:
        raise KeyError(f"unknown task '{name}'; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


# ---------------------------------------------------------------------------------------------
# Checkpoints: a directory that reloads without Ray or the training loop.
#   backbone/          encoder + tokenizer (save_pretrained; LoRA merged in)
#   heads.safetensors  every parameter and buffer outside the encoder
#   config.yaml        the resolved run config
#   labels.json        task, label order and anything else the head needs to decode


def unwrap(model: nn.Module) -> nn.Module:
    """Strip DDP / torch.compile wrappers so saved keys carry no 'module.' or '_orig_mod.'."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def _plain_encoder(encoder: nn.Module) -> nn.Module:
    """The encoder with any LoRA adapters merged, leaving the training model untouched."""
    if hasattr(encoder, "merge_and_unload"):
        return copy.deepcopy(encoder).merge_and_unload()
    return encoder


def save_checkpoint(model: nn.Module, tokenizer: Any, cfg: RunConfig, labels: dict[str, Any], out: Path,
                    metrics: dict[str, Any] | None = None) -> Path:
    model = unwrap(model)
    out.mkdir(parents=True, exist_ok=True)
    encoder = _plain_encoder(model.encoder)
    encoder.save_pretrained(out / "backbone", safe_serialization=True)
    tokenizer.save_pretrained(out / "backbone")
    heads = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    save_file(heads, str(out / "heads.safetensors"))
    save_config(cfg, out / "config.yaml")
    (out / "labels.json").write_text(
        json.dumps({"version": CHECKPOINT_VERSION, "task": cfg.task, **labels}, ensure_ascii=False, indent=1),
        encoding="utf-8",
    )
    if metrics is not None:
        (out / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=1), encoding="utf-8")
    return out


def load_checkpoint(path: str | Path, build: Callable[[nn.Module, RunConfig, dict[str, Any]], nn.Module]):
    """(model in eval mode, tokenizer, config, labels) from a checkpoint directory."""
    import yaml

    from spanfirst.backbone import load_encoder, load_tokenizer

    path = Path(path)
    for name in ("backbone", "heads.safetensors", "config.yaml", "labels.json"):
        if not (path / name).exists():
            raise FileNotFoundError(f"{path}: not a spanfirst checkpoint (missing {name})")
    cfg = config_from_dict(yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")), str(path / "config.yaml"))
    labels = json.loads((path / "labels.json").read_text(encoding="utf-8"))
    encoder = load_encoder(str(path / "backbone"))
    tokenizer = load_tokenizer(str(path / "backbone"))
    model = build(encoder, cfg, labels)
    missing, unexpected = model.load_state_dict(load_file(str(path / "heads.safetensors")), strict=False)
    missing = [k for k in missing if not k.startswith("encoder.")]
    if missing or unexpected:
        raise ValueError(f"{path}/heads.safetensors does not fit the model: missing {missing}, unexpected {unexpected}")
    model.eval()
    return model, tokenizer, cfg, labels
