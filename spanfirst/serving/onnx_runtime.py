"""The ONNX runtimes of a served model: its encoder exported to ONNX and run by ONNX Runtime
(``onnx``), or the same with its linear layers dynamically quantised to int8 (``onnx-int8``).

Only the encoder is exported. It is nearly all of a forward pass, and every head (span-first,
GlobalPointer, GLiNER, BIO, the RE poolers) calls it the same way, ``input_ids`` and
``attention_mask`` in, ``last_hidden_state`` out; the heads' few layers and all decoding (top-k,
NMS, windows, pair logic) stay the same PyTorch and Python code for every runtime, so answers
differ only by the encoder's numerics. The exported file is a checkpoint artifact
(:meth:`spanfirst.checkpoint.Checkpoint.onnx_encoder`); ``onnxruntime`` is the ``onnx`` extra.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spanfirst import checkpoint as ckpt

RUNTIMES = ("torch", "onnx", "onnx-int8")
INSTALL_HINT = "pip install -e '.[onnx]'"
_PROTO_LIMIT = 1_900_000_000  # bytes: a bigger model keeps its weights beside the graph (protobuf's 2 GB cap)


def require(module: str = "onnxruntime") -> Any:
    """Import one of the ``onnx`` extra's packages, or say how to install them."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise RuntimeError(f"the ONNX runtimes need the '{module}' package: {INSTALL_HINT}") from None


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
    return runtime


class _LastHidden(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _example_inputs(encoder: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows, the second padded, so the export traces the masked path."""
    cfg = encoder.config
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else 0
    ids = torch.randint(5, max(6, min(cfg.vocab_size, 1000)), (2, 16))
    mask = torch.ones_like(ids)
    ids[1, 10:], mask[1, 10:] = pad, 0
    return ids, mask


def export_encoder(checkpoint: ckpt.Checkpoint, runtime: str) -> Path:
    """Write the checkpoint's encoder for ``runtime`` (``onnx`` or ``onnx-int8``), dynamic batch and
    sequence axes; returns the file. The int8 file is ONNX Runtime's dynamic quantisation of the
    exported graph (weights int8 per output channel, activations quantised at run time)."""
    from spanfirst.backbone import load_encoder

    require("onnx"), require("onnxscript"), require("onnxruntime")
    out = checkpoint.onnx_encoder(runtime)
    encoder = load_encoder(checkpoint.backbone_path).eval()
    big = sum(p.numel() * p.element_size() for p in encoder.parameters()) > _PROTO_LIMIT
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    shapes = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}
    with tempfile.TemporaryDirectory(prefix="spanfirst-onnx-") as tmp, _quiet("torch.onnx", ""):
        fp32 = out if runtime == "onnx" else Path(tmp) / "encoder.onnx"
        torch.onnx.export(_LastHidden(encoder).eval(), _example_inputs(encoder), str(fp32), dynamo=True,
                          input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                          dynamic_shapes=shapes, external_data=big, verbose=False)
        if runtime == "onnx-int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True,
                             use_external_data_format=big)
    return out


@contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """The exporters' info and warning lines (the root logger's too: the quantiser's pre-processing
    hint) held back for the block, the levels restored after."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


class OnnxEncoder(nn.Module):
    """Stands in for a Hugging Face encoder inside a head: same call, same output field, run by ONNX
    Runtime on the CPU with the threads torch would use."""

    def __init__(self, path: Path, config: Any) -> None:
        super().__init__()
        ort = require("onnxruntime")
        if not path.is_file():
            raise ckpt.CheckpointError(f"{path.parent}: no {path.name}; the model was registered without this "
                                       "runtime (register it with --runtime onnx or onnx-int8)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.config = config
        self.path = path

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> Any:
        from transformers.modeling_outputs import BaseModelOutput

        hidden = self.session.run(["last_hidden_state"], {
            "input_ids": input_ids.detach().cpu().numpy().astype("int64"),
            "attention_mask": attention_mask.detach().cpu().numpy().astype("int64"),
        })[0]
        return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))


def use_runtime(model: nn.Module, checkpoint: ckpt.Checkpoint, runtime: str, device: str = "cpu") -> nn.Module:
    """``model`` (a loaded checkpoint's, in eval mode) with its encoder run by ``runtime``; torch: as is."""
    if check_runtime(runtime) == "torch":
        return model
    if torch.device(device).type != "cpu":
        raise ValueError(f"runtime {runtime!r} runs on the CPU; serve with device 'cpu' or runtime 'torch'")
    model.encoder = OnnxEncoder(checkpoint.onnx_encoder(runtime), model.encoder.config)
    return model
