"""Which sources ``predict.py`` treats as MLflow models, and its refusal of anything else."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from spanfirst.serving.load import is_mlflow_model, load_serving_model

REPO = Path(__file__).resolve().parents[2]


def test_model_uris_and_mlflow_folders_go_through_mlflow(tmp_path):
    for uri in ("models:/spanfirst-ner@champion", "models:/m/3", "runs:/abc/model", "s3://bucket/m", "file:///x"):
        assert is_mlflow_model(uri)
    assert not is_mlflow_model("runs/quickstart-ner/best") and not is_mlflow_model(str(tmp_path))
    (tmp_path / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
    assert is_mlflow_model(str(tmp_path))


def test_a_folder_that_is_no_model_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="neither a spanfirst checkpoint"):
        load_serving_model(tmp_path)
    (tmp_path / "in.txt").write_text("서울\n", encoding="utf-8")
    main = runpy.run_path(str(REPO / "pipelines" / "predict.py"))["main"]
    assert main([str(tmp_path), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert f"error: {tmp_path}: neither a spanfirst checkpoint" in capsys.readouterr().err
