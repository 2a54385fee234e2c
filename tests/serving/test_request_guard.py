"""The request guard's reading of MLflow's JSON request formats and its limits (no server: the
served guard is tested in test_serve_e2e.py)."""

from __future__ import annotations

import json

import pytest

from spanfirst.serving.inputs import BadRequest
from spanfirst.serving.request_guard import TooLarge, check_body, rows_and_texts
from spanfirst.serving.settings import ServingSettings

SETTINGS = ServingSettings(batch_size=4, max_batch_size=3, device="cpu", max_text_chars=10, max_request_bytes=2_000)


@pytest.mark.parametrize(("body", "shape"), [
    ({"inputs": ["a", "bb"]}, (2, ["a", "bb"])),
    ({"inputs": "a"}, (1, ["a"])),
    ({"instances": [{"text": "a"}, {"txt": "b"}]}, (2, ["a", None])),
    ({"inputs": {"text": ["a", "b", "c"], "subject_start": [0, 1, 2]}}, (3, ["a", "b", "c"])),
    ({"inputs": {"text": "a", "subject_start": 0}}, (1, ["a"])),
    ({"dataframe_records": [{"text": "a", "x": 1}, {"x": 2}]}, (2, ["a", None])),
    ({"dataframe_split": {"columns": ["x", "text"], "data": [[1, "a"], [2]]}}, (2, ["a", None])),
    ({"dataframe_split": {"columns": ["x"], "data": [[1], [2]]}}, (2, [None, None])),
    ({"dataframe_split": {"data": "not rows"}}, None),
    ({"texts": ["a"]}, None),
    (["a"], None),
])
def test_rows_and_texts_reads_every_mlflow_json_format(body, shape):
    assert rows_and_texts(body) == shape


def test_check_body_refuses_bytes_then_rows_then_text_length_naming_the_limit():
    with pytest.raises(TooLarge, match="2,001 bytes; at most 2,000 per request .*max_request_bytes"):
        check_body(b" " * 2_001, "application/json", SETTINGS)
    with pytest.raises(BadRequest, match="holds 4 rows; at most 3 rows per request .*max_batch_size"):
        check_body(json.dumps({"inputs": ["a"] * 4}), "application/json", SETTINGS)
    with pytest.raises(BadRequest, match="field 'text' of row 1 has 11 characters; at most 10 .*max_text_chars"):
        check_body(json.dumps({"dataframe_records": [{"text": "a"}, {"text": "b" * 11}]}), "application/json", SETTINGS)


def test_check_body_hands_on_a_parsed_object_and_leaves_the_rest_to_mlflow():
    body = {"inputs": ["a"], "params": {"types": ["PER"]}}
    assert check_body(json.dumps(body).encode(), "application/json; charset=utf-8", SETTINGS) == body
    assert check_body(b'{"inputs": ["a"', "application/json", SETTINGS) is None  # MLflow names the bad JSON
    assert check_body(b'["a"]', "application/json", SETTINGS) is None  # a list: MLflow's own message
    assert check_body(b"\xff\xfe", "application/json", SETTINGS) is None
    assert check_body(b"text\na\n", "text/csv", SETTINGS) is None  # bytes checked, CSV parsed by MLflow
    with pytest.raises(TooLarge):
        check_body(b"text\n" + b"a" * 3_000, "text/csv", SETTINGS)


def test_install_wraps_mlflow_s_invocations_once_and_not_when_switched_off(monkeypatch):
    from mlflow.pyfunc import scoring_server

    from spanfirst.serving import request_guard

    original = getattr(scoring_server.invocations, "__wrapped__", scoring_server.invocations)  # a model loaded earlier
    monkeypatch.setattr(scoring_server, "invocations", original)
    monkeypatch.setenv(request_guard.DISABLE, "0")
    request_guard.install()
    assert scoring_server.invocations is original
    monkeypatch.delenv(request_guard.DISABLE)
    request_guard.install()
    guarded = scoring_server.invocations
    assert guarded is not original and guarded.spanfirst_guard
    request_guard.install()
    assert scoring_server.invocations is guarded  # not wrapped twice
