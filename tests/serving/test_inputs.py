"""Request checks of the serving model, on their own: every refusal names the field (and row)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spanfirst.ner.serving import COLUMNS as NER_COLUMNS
from spanfirst.ner.serving import ner_texts
from spanfirst.re.serving import re_records
from spanfirst.serving.inputs import BadRequest, as_frame
from spanfirst.serving.settings import DEFAULT_CONFIG, ServingSettings

TEXT = "이순신은 조선 중기의 무신이다."
GOOD = {"text": TEXT, "subject_start": 0, "subject_end": 3, "subject_type": "PER",
        "object_start": 5, "object_end": 7, "object_type": "LOC"}


def re_frame(**changes) -> pd.DataFrame:
    row = {**GOOD, **changes}
    return pd.DataFrame([{k: v for k, v in row.items() if v is not ...}])


def test_ner_texts_from_every_shape_pyfunc_hands_over():
    assert ner_texts(as_frame(["a", "b"], NER_COLUMNS), 8) == ["a", "b"]
    assert ner_texts(pd.DataFrame({"text": ["a", "b"]}), 8) == ["a", "b"]
    # {"inputs": {"text": [...]}} reaches the model as one row holding the list
    assert ner_texts(pd.DataFrame([{"text": ["a", "b"]}]), 8) == ["a", "b"]
    assert ner_texts(pd.DataFrame([{"text": np.array(["a"])}]), 8) == ["a"]
    assert ner_texts(pd.DataFrame({"text": []}), 8) == []


@pytest.mark.parametrize(("frame", "message"), [
    (pd.DataFrame({"txt": ["a"]}), r"missing field\(s\) \['text'\]"),
    (pd.DataFrame({"text": ["a", ""]}), "field 'text' of row 1 is empty"),
    (pd.DataFrame({"text": ["a", "  \n"]}), "field 'text' of row 1 is empty"),
    (pd.DataFrame({"text": [5]}), "field 'text' of row 0 must be a string, got int 5"),
    (pd.DataFrame({"text": ["a", None]}), "field 'text' of row 1 must be a string, got null"),
    (pd.DataFrame({"text": ["a", float("nan")]}), "field 'text' of row 1 must be a string, got null"),
    (pd.DataFrame({"text": pd.array(["a", None], dtype="string")}), "field 'text' of row 1 must be a string, got null"),
    (pd.DataFrame([{"text": ["a", 3]}]), "field 'text' of row 1 must be a string, got int 3"),
    (pd.DataFrame({"text": ["a"] * 9}), "holds 9 rows; at most 8 rows per request"),
])
def test_bad_ner_requests_name_the_field(frame, message):
    with pytest.raises(BadRequest, match=message):
        ner_texts(frame, 8)


def test_re_records_checked_and_nested():
    (rec,) = re_records(re_frame(), 8)
    assert rec == {"text": TEXT, "subject": {"start": 0, "end": 3, "type": "PER"},
                   "object": {"start": 5, "end": 7, "type": "LOC"}}
    # a float column (a null elsewhere turned the ints into floats) is fine where the value is whole
    assert re_records(re_frame(object_start=5.0), 8)[0]["object"]["start"] == 5
    assert re_records(pd.DataFrame([GOOD] * 8), 8)[7] == rec


@pytest.mark.parametrize(("changes", "message"), [
    ({"subject_type": ...}, r"missing field\(s\) \['subject_type'\]"),
    ({"object_start": ..., "object_end": ...}, r"missing field\(s\) \['object_start', 'object_end'\]"),
    ({"object_end": 40}, r"field 'object_end' of row 0 \(40\) lies outside the text \(length 17"),
    ({"subject_start": -1}, r"field 'subject_start' of row 0 \(-1\) lies outside the text"),
    ({"subject_start": 3}, r"field 'subject_start' of row 0 \(3\) must be less than 'subject_end' \(3"),
    ({"object_start": 7, "object_end": 5}, r"field 'object_start' of row 0 \(7\) must be less than 'object_end'"),
    ({"subject_start": "0"}, "field 'subject_start' of row 0 must be an integer character offset, got '0'"),
    ({"subject_end": 2.5}, "field 'subject_end' of row 0 must be an integer character offset, got float 2.5"),
    ({"object_end": True}, "field 'object_end' of row 0 must be an integer character offset, got bool True"),
    ({"object_end": None}, "field 'object_end' of row 0 must be an integer character offset, got null"),
    ({"object_type": ""}, "field 'object_type' of row 0 must be a non-empty string"),
    ({"subject_type": 3}, "field 'subject_type' of row 0 must be a non-empty string, got int 3"),
    ({"text": ""}, "field 'text' of row 0 is empty"),
    ({"text": 12}, "field 'text' of row 0 must be a string, got int 12"),
])
def test_bad_re_requests_name_the_field(changes, message):
    with pytest.raises(BadRequest, match=message):
        re_records(re_frame(**changes), 8)


def test_second_row_is_named_and_the_batch_limit_holds():
    frame = pd.DataFrame([GOOD, {**GOOD, "object_end": 99}])
    with pytest.raises(BadRequest, match="'object_end' of row 1"):
        re_records(frame, 8)
    with pytest.raises(BadRequest, match="holds 9 rows; at most 8"):
        re_records(pd.DataFrame([GOOD] * 9), 8)


def test_serving_settings_defaults_and_overrides():
    assert ServingSettings.from_config(None) == ServingSettings(32, 256, "cpu") == ServingSettings.from_config(DEFAULT_CONFIG)
    assert ServingSettings.from_config({"max_batch_size": "64"}).max_batch_size == 64  # env JSON may carry strings
    for bad in (0, -1, 2.5, True, "x", None):
        with pytest.raises(ValueError, match="model_config 'max_batch_size' must be a positive integer"):
            ServingSettings.from_config({"max_batch_size": bad})


def test_checkpoint_folders_obey_mlflow_s_inference_config_variable(monkeypatch):
    from spanfirst.serving.settings import env_overrides

    monkeypatch.delenv("MLFLOW_PYFUNC_INFERENCE_CONFIG", raising=False)
    assert env_overrides() == {}
    monkeypatch.setenv("MLFLOW_PYFUNC_INFERENCE_CONFIG", '{"max_batch_size": 8, "unrelated": 1}')
    assert env_overrides() == {"max_batch_size": 8}  # as MLflow: only the model's own keys
    monkeypatch.setenv("MLFLOW_PYFUNC_INFERENCE_CONFIG", "[8]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        env_overrides()


def test_a_text_over_the_limit_is_refused_naming_its_row():
    import pandas as pd

    from spanfirst.serving.inputs import BadRequest, check_text_lengths

    check_text_lengths(pd.DataFrame({"text": ["abc", "de"]}), 3)
    check_text_lengths(pd.DataFrame({"other": ["abcdef"]}), 3)  # the schema check names a missing column
    with pytest.raises(BadRequest, match=r"^field 'text' of row 1 has 4 characters; at most 3 per text"):
        check_text_lengths(pd.DataFrame({"text": ["abc", "defg"]}), 3)
    with pytest.raises(BadRequest, match="of row 2 has 5 characters"):  # {"inputs": [...]}: one row holding the list
        check_text_lengths(pd.DataFrame({"text": [["a", "b", "cdefg"]]}), 3)
