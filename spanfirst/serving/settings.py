"""The serving model's ``model_config``: rows per forward pass, the most rows per request, the
longest text, the largest request body (:mod:`spanfirst.serving.request_guard`), device, runtime (``torch``, ``onnx``, ``onnx-int8``: :mod:`spanfirst.serving.onnx_runtime`).

Set at log time (``log_checkpoint_model(..., model_config=...)``, ``train.py --max-batch-size``);
overridable when the model is loaded, with MLflow's own ``MLFLOW_PYFUNC_INFERENCE_CONFIG``
environment variable (a JSON object, e.g. ``{"max_batch_size": 64}``), which ``mlflow models
serve`` and ``mlflow.pyfunc.load_model`` both honour.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

ENV_OVERRIDES = "MLFLOW_PYFUNC_INFERENCE_CONFIG"

# max_text_chars: 100,000 characters is some 30 pages; one such text takes seconds on a GPU and
# far longer on a CPU worker, and a request holds up to max_batch_size of them.
# max_request_bytes: the body of one request (gRPC's default message size): 256 rows of some 5,000
# Korean characters (3 bytes each in UTF-8), or ten texts of max_text_chars
DEFAULT_CONFIG: dict[str, Any] = {"batch_size": 32, "max_batch_size": 256, "max_text_chars": 100_000,
                                  "max_request_bytes": 4_000_000, "device": "cpu", "runtime": "torch"}


@dataclass(frozen=True)
class ServingSettings:
    batch_size: int
    max_batch_size: int
    device: str
    max_text_chars: int = DEFAULT_CONFIG["max_text_chars"]
    runtime: str = "torch"
    max_request_bytes: int = DEFAULT_CONFIG["max_request_bytes"]

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> "ServingSettings":
        merged = {**DEFAULT_CONFIG, **(config or {})}
        device = merged["device"]
        if not isinstance(device, str) or not device:
            raise ValueError(f"model_config 'device' must be a torch device name such as 'cpu' or 'cuda', got {device!r}")
        from spanfirst.serving.onnx_runtime import RUNTIMES

        if merged["runtime"] not in RUNTIMES:
            raise ValueError(f"model_config 'runtime' must be one of {list(RUNTIMES)}, got {merged['runtime']!r}")
        return cls(_positive_int(merged, "batch_size"), _positive_int(merged, "max_batch_size"), device,
                   _positive_int(merged, "max_text_chars"), merged["runtime"], _positive_int(merged, "max_request_bytes"))


def _positive_int(config: dict[str, Any], key: str) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit() \
            or int(value) < 1:
        raise ValueError(f"model_config '{key}' must be a positive integer, got {value!r}")
    return int(value)


def env_overrides() -> dict[str, Any]:
    """The known keys of ``MLFLOW_PYFUNC_INFERENCE_CONFIG``, for a model loaded without MLflow
    (a checkpoint folder), so it obeys the variable as a registered model does."""
    raw = os.environ.get(ENV_OVERRIDES)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"{ENV_OVERRIDES} is not valid JSON: {err.msg}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{ENV_OVERRIDES} must be a JSON object, got {raw!r}")
    return {k: v for k, v in value.items() if k in DEFAULT_CONFIG}
