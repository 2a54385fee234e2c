"""The checkpoint: the one place that writes and reads its format.

A checkpoint is a folder that training writes (the best epoch of a run or a trial) and that
evaluation, prediction, serving and registration read back, without Ray::

    backbone/          encoder + tokenizer (save_pretrained; LoRA merged in)
    heads.safetensors  every parameter and buffer outside the encoder
    config.yaml        the resolved run config
    labels.json        format version, task, and the label info the task needs to decode
    metrics.json       (optional) the epoch's metrics and evaluation report
    encoder.onnx       (optional, registration with ``serving.runtime: onnx``) the encoder for
                       ONNX Runtime; ``encoder-int8.onnx`` for ``onnx-int8``; weights over 2 GB
                       sit beside it in ``<name>.data``

A run that may be restarted after a lost worker (``train.max_failures`` > 0) also writes, every
epoch, what the loop needs to continue where it stopped::

    training_state.pt  model (unmerged, LoRA adapters as they train), optimizer, LR scheduler,
                       grad scaler, epoch, best score, patience count, RNG states

An epoch that did not improve writes only ``training_state.pt`` (a resume point, not a model);
:func:`has_model` tells the two apart, and registration never copies the training state.

Everything else asks :func:`read` for a :class:`Checkpoint`; nobody opens these files directly.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from spanfirst.config import RunConfig, config_from_dict, read_yaml_mapping, save_config

#: Written into labels.json; bumped whenever a reader of older checkpoints would misread them.
#: 2: one config per task (an RE config has no ``ner`` section nor ``model.head``).
CHECKPOINT_VERSION = 2
MANIFEST = "labels.json"  # its presence makes a folder a model checkpoint
_REQUIRED = ("backbone", "heads.safetensors", "config.yaml", MANIFEST)
#: the encoder exported for each ONNX runtime (:mod:`spanfirst.serving.onnx_runtime` writes them)
ONNX_ENCODERS = {"onnx": "encoder.onnx", "onnx-int8": "encoder-int8.onnx"}
MODEL_FILES = frozenset({*_REQUIRED, "metrics.json", *ONNX_ENCODERS.values(),
                         *(f"{name}.data" for name in ONNX_ENCODERS.values())})  # a model checkpoint's own files
_MANIFEST_KEYS = ("version", "task")

Builder = Callable[[nn.Module, RunConfig, dict[str, Any]], nn.Module]


class CheckpointError(ValueError):
    """A folder that is not a checkpoint this version of spanfirst can read; the message says why."""


TRAINING_STATE = "training_state.pt"


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def has_model(path: str | Path) -> bool:
    """A folder that holds a model (not only a training state to resume from)."""
    return is_checkpoint(path)


def has_training_state(path: str | Path) -> bool:
    return (Path(path) / TRAINING_STATE).is_file()


def save_training_state(out: str | Path, model: nn.Module, state: dict[str, Any]) -> Path:
    """``state``: the optimizer/scheduler/scaler state dicts and the loop's counters; the model's
    own state dict (unwrapped) is added here. One file, written under a temporary name first."""
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (TRAINING_STATE + ".tmp")
    torch.save({"format": CHECKPOINT_VERSION, "model": unwrap(model).state_dict(), **state}, tmp)
    tmp.replace(out / TRAINING_STATE)
    return out / TRAINING_STATE


def read_training_state(path: str | Path) -> dict[str, Any]:
    """What :func:`save_training_state` wrote (on the CPU), its format checked."""
    import torch

    f = Path(path) / TRAINING_STATE
    if not f.is_file():
        raise CheckpointError(f"{path}: no {TRAINING_STATE} to resume training from")
    state = torch.load(f, map_location="cpu", weights_only=True)  # tensors and plain values: no pickled code
    if state.get("format") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{f}: training state format {state.get('format')}, this spanfirst reads "
                              f"{CHECKPOINT_VERSION}; start the run again")
    return state


def copy_model(src: str | Path, dst: str | Path) -> Path:
    """A checkpoint's model files alone (no training state, nothing else): what registration logs."""
    import shutil

    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name in MODEL_FILES:
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, dst / item.name)
    return dst


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
    """The encoder as ``from_pretrained`` reads it back: LoRA adapters merged and partly frozen word
    embeddings (:class:`~spanfirst.backbone.AddedRowsEmbedding`) made plain, leaving the training
    model untouched (a shallow copy shares every other module)."""
    from spanfirst.backbone import AddedRowsEmbedding

    if hasattr(encoder, "merge_and_unload"):
        encoder = copy.deepcopy(encoder).merge_and_unload()
    embeddings = encoder.get_input_embeddings()
    if isinstance(embeddings, AddedRowsEmbedding):
        encoder = _with_input_embeddings(encoder, embeddings.merged())
    return encoder


def _with_input_embeddings(encoder: nn.Module, embeddings: nn.Module) -> nn.Module:
    """A copy of ``encoder`` whose input embeddings are ``embeddings``; the copy shares every other
    submodule (shallow copies along the path to the embeddings only)."""
    target = encoder.get_input_embeddings()
    path = next(name for name, m in encoder.named_modules() if m is target).split(".")
    root = copy.copy(encoder)
    root._modules = dict(root._modules)
    node = root
    for part in path[:-1]:
        child = copy.copy(node._modules[part])
        child._modules = dict(child._modules)
        node._modules[part] = child
        node = child
    node._modules[path[-1]] = embeddings
    return root


def save(model: nn.Module, tokenizer: Any, cfg: RunConfig, labels: dict[str, Any], out: str | Path,
         metrics: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (encoder + heads), its tokenizer, config and label info to ``out``."""
    from safetensors.torch import save_file

    model, out = unwrap(model), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    encoder = _plain_encoder(model.encoder)
    encoder.save_pretrained(out / "backbone", safe_serialization=True)
    tokenizer.save_pretrained(out / "backbone")
    heads = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    save_file(heads, str(out / "heads.safetensors"))
    save_config(cfg, out / "config.yaml")
    clash = [k for k in _MANIFEST_KEYS if k in labels]
    if clash:
        raise ValueError(f"label info may not use the reserved keys {clash}")
    manifest = {"version": CHECKPOINT_VERSION, "task": cfg.task, **labels}
    (out / "labels.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    if metrics is not None:
        (out / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=1), encoding="utf-8")
    return out


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint folder read and checked: its config, task and label info (weights load on demand)."""

    path: Path
    cfg: RunConfig
    task: str
    labels: dict[str, Any]  # the task's label info (labels.json without version and task)

    @property
    def backbone_path(self) -> str:
        return str(self.path / "backbone")

    def onnx_encoder(self, runtime: str) -> Path:
        """Where the encoder exported for ``runtime`` (``onnx`` or ``onnx-int8``) lives; it may not exist yet."""
        if runtime not in ONNX_ENCODERS:
            raise ValueError(f"runtime {runtime!r} has no ONNX encoder; ONNX runtimes: {sorted(ONNX_ENCODERS)}")
        return self.path / ONNX_ENCODERS[runtime]

    def metrics(self) -> dict[str, Any]:
        """The saved epoch metrics and evaluation report ({} when the checkpoint has none)."""
        f = self.path / "metrics.json"
        return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}

    def load_model(self, build: Builder) -> tuple[nn.Module, Any]:
        """(model in eval mode, tokenizer): ``build(encoder, cfg, labels)`` gives the skeleton the
        saved heads load into."""
        from safetensors.torch import load_file

        from spanfirst.backbone import load_encoder, load_tokenizer

        encoder = load_encoder(self.backbone_path)
        tokenizer = load_tokenizer(self.backbone_path)
        model = build(encoder, self.cfg, self.labels)
        missing, unexpected = model.load_state_dict(load_file(str(self.path / "heads.safetensors")), strict=False)
        missing = [k for k in missing if not k.startswith("encoder.")]
        if missing or unexpected:
            raise CheckpointError(f"{self.path}/heads.safetensors does not fit the model: missing {missing}, "
                                  f"unexpected {unexpected}")
        model.eval()
        return model, tokenizer


#: Settings whose default changed after checkpoints of this format were written: a saved config
#: without the key was trained (and decodes) with the old value, not the new default.
LEGACY_DEFAULTS: dict[str, dict[str, Any]] = {
    "ner": {
        "ner.global_pointer.threshold": 0.5,  # a positive logit; now "auto" (chosen on dev)
        "ner.max_edge_trim": 0,  # entities on token boundaries; a checkpoint without the edge head
    },
}


def with_legacy_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """A saved config with the old value of every :data:`LEGACY_DEFAULTS` key it does not name."""
    from spanfirst.config import DEFAULT_TASK, get_dotted

    raw = copy.deepcopy(raw)
    for dotted, value in LEGACY_DEFAULTS.get(raw.get("task", DEFAULT_TASK), {}).items():
        if get_dotted(raw, dotted) is None:
            node = raw
            for part in dotted.split(".")[:-1]:
                node = node.setdefault(part, {})
            node[dotted.rsplit(".", 1)[-1]] = value
    return raw


def read(path: str | Path, task: str | None = None) -> Checkpoint:
    """The checkpoint at ``path``, its format version checked; ``task``: the task it must be."""
    path = Path(path)
    for name in _REQUIRED:
        if not (path / name).exists():
            raise CheckpointError(f"{path}: not a spanfirst checkpoint (missing {name})")
    manifest_file = path / "labels.json"
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{manifest_file}: not valid JSON: {err.msg}") from None
    version = manifest.get("version")
    if version != CHECKPOINT_VERSION:
        if isinstance(version, int) and version > CHECKPOINT_VERSION:
            hint = "it was written by a newer spanfirst: upgrade spanfirst to read it"
        else:
            hint = "it was written by an older spanfirst: retrain, or read it with the spanfirst that wrote it"
        raise CheckpointError(f"{path}: checkpoint format version {version}, but this spanfirst reads version "
                              f"{CHECKPOINT_VERSION}; {hint}")
    found = manifest.get("task")
    if task is not None and found != task:
        raise CheckpointError(f"{path}: a '{found}' checkpoint, not a '{task}' one")
    cfg_file = path / "config.yaml"
    cfg = config_from_dict(with_legacy_defaults(read_yaml_mapping(cfg_file)), str(cfg_file))
    if cfg.task != found:
        raise CheckpointError(f"{path}: labels.json says task '{found}' but config.yaml says '{cfg.task}'")
    labels = {k: v for k, v in manifest.items() if k not in _MANIFEST_KEYS}
    return Checkpoint(path, cfg, found, labels)
