"""Refuse an oversized request before ``mlflow models serve`` parses it.

MLflow's scoring server turns a JSON body into a pandas DataFrame and enforces the input schema
before the model's ``predict`` runs. Our columns are typed ``Any`` so that the model itself can
name the row and field of a bad value, and ``Any`` is enforced cell by cell in Python: refusing a
10,240-row RE request cost the server 162 ms of CPU (25 ms with this guard; docs/benchmarks.md, the
soak), and valid requests queued behind it. The guard wraps the scoring server's ``invocations`` (installed
once per process by the models' ``load_context``): first the body's bytes against
``max_request_bytes`` (HTTP 413), then one JSON parse (C speed) to count rows against
``max_batch_size`` and measure texts against ``max_text_chars`` (HTTP 400, the same messages
``predict`` gives); a request within the limits goes on to MLflow already parsed, so the guard adds
no second parse. Requests to models without spanfirst settings pass through untouched.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from typing import Any

from spanfirst.serving.inputs import BadRequest, check_row_count, check_texts
from spanfirst.serving.settings import ServingSettings

_log = logging.getLogger(__name__)
FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")
DISABLE = "SPANFIRST_REQUEST_GUARD"


def rows_and_texts(body: Any) -> tuple[int, list[Any]] | None:
    """Row count and each row's ``text`` value (row ``i`` at index ``i``; None where a row has
    none) of a parsed request in any of MLflow's JSON formats; None for a shape MLflow's parser
    will refuse or read some other way (it then answers as it always does)."""
    if not isinstance(body, dict):
        return None
    key = next((k for k in FORMATS if k in body), None)
    if key is None:
        return None
    data = body[key]
    if key == "dataframe_split":
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            return None
        columns = data.get("columns") if isinstance(data.get("columns"), list) else []
        at = columns.index("text") if "text" in columns else None
        rows = data["data"]
        return len(rows), [r[at] if at is not None and isinstance(r, list) and at < len(r) else None for r in rows]
    if isinstance(data, dict):  # columns: {"text": [...], ...}
        lengths = [len(v) for v in data.values() if isinstance(v, list)]
        text = data.get("text")
        return (max(lengths) if lengths else 1), (text if isinstance(text, list) else [text])
    if isinstance(data, str):
        return 1, [data]
    if isinstance(data, list):  # records, or one text per row
        return len(data), [r.get("text") if isinstance(r, dict) else r for r in data]
    return None


def check_body(data: bytes | str, content_type: str | None, settings: ServingSettings) -> Any:
    """The parsed JSON object (to hand on) or None (not JSON, not parseable or not an object: MLflow
    parses and answers as always);
    raises :class:`TooLarge` or :class:`BadRequest` for a request over a limit."""
    size = len(data)
    if size > settings.max_request_bytes:
        raise TooLarge(f"the request body holds {size:,} bytes; at most {settings.max_request_bytes:,} per request "
                       "(the model's max_request_bytes)")
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        return None
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    shape = rows_and_texts(body)
    if shape is not None:
        rows, texts = shape
        check_row_count(rows, settings.max_batch_size)
        check_texts(texts, settings.max_text_chars)
    return body if isinstance(body, dict) else None


class TooLarge(BadRequest):
    """A request body over ``max_request_bytes`` (HTTP 413)."""


def _settings_of(model: Any) -> ServingSettings | None:
    try:
        settings = getattr(model.unwrap_python_model(), "settings", None)
    except Exception:  # noqa: BLE001 (not a python model, or MLflow changed: no guard, predict still checks)
        return None
    return settings if isinstance(settings, ServingSettings) else None


def install() -> None:
    """Wrap ``mlflow.pyfunc.scoring_server.invocations`` with the checks above (once per process;
    not at all with ``SPANFIRST_REQUEST_GUARD=0``, which leaves every check to the model)."""
    if os.environ.get(DISABLE, "1").strip() == "0":
        return
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.pyfunc import scoring_server
    except ImportError:
        return
    original = getattr(scoring_server, "invocations", None)
    if original is None or getattr(original, "spanfirst_guard", False):
        if original is None:
            _log.warning("mlflow.pyfunc.scoring_server has no 'invocations': requests are checked by the model only")
        return

    @functools.wraps(original)
    def invocations(data: Any, content_type: str, model: Any, input_schema: Any) -> Any:
        settings = _settings_of(model)
        if settings is not None and isinstance(data, (bytes, str)):
            try:
                parsed = check_body(data, content_type, settings)
            except TooLarge as err:
                error = MlflowException.invalid_parameter_value(str(err)).serialize_as_json()
                return scoring_server.InvocationsResponse(response=error, status=413, mimetype="application/json")
            except BadRequest as err:
                raise MlflowException.invalid_parameter_value(str(err)) from None
            if parsed is not None:
                data = parsed
        return original(data, content_type, model, input_schema)

    invocations.spanfirst_guard = True  # type: ignore[attr-defined]
    scoring_server.invocations = invocations
