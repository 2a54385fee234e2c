"""A team member's client, run in its own process by the tracking-server tests.

It sees the server only the way the sweep, train.py and predict.py do: ``MLFLOW_TRACKING_URI``
(and ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` when auth is on) in its
environment. It logs a run through ``mlflow.start_run`` and the project's own helpers, registers a
model version and promotes it with the project's champion rule, then reads everything back with
a fresh client and prints it as JSON:

    python client_scenario.py SPEC_JSON
    SPEC_JSON: {"experiment", "model", "params": {...}, "dev_scores": [...], "predict": [...], "artifact_text"}
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from spanfirst import tracking

# A cheap pyfunc "model from code", logged and registered the way the project logs its models.
MODEL_CODE = """
import mlflow


class TextLength(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [len(text) for text in model_input["text"]]


mlflow.models.set_model(TextLength())
"""


def log_and_register(spec: dict) -> tuple[str, str]:
    uri = os.environ["MLFLOW_TRACKING_URI"]
    experiment_id = tracking.ensure_experiment(uri, spec["experiment"])
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(experiment_id=experiment_id) as run:
        run_id = run.info.run_id
        tracking.log_params(uri, run_id, spec["params"])
        for epoch, score in enumerate(spec["dev_scores"]):
            mlflow.log_metric("dev_score", score, step=epoch)
        report = Path(tmp) / "report.json"
        report.write_text(spec["artifact_text"], encoding="utf-8")
        mlflow.log_artifact(str(report), artifact_path="eval")
        code = Path(tmp) / "model_code.py"
        code.write_text(MODEL_CODE, encoding="utf-8")
        labels = Path(tmp) / "labels.json"
        labels.write_text(json.dumps({"types": ["PS", "LC"]}), encoding="utf-8")
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code), artifacts={"labels": str(labels)},
                                       pip_requirements=[])
    version = mlflow.register_model(info.model_uri, spec["model"]).version
    tracking.promote_if_better(uri, spec["model"], version, "dev_score", max(spec["dev_scores"]))
    return run_id, version


def read_back(run_id: str, spec: dict) -> dict:
    c = MlflowClient()
    run = c.get_run(run_id)
    champion = c.get_model_version_by_alias(spec["model"], tracking.CHAMPION)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="eval/report.json",
                                                          dst_path=tmp))
        model = mlflow.pyfunc.load_model(f"models:/{spec['model']}@{tracking.CHAMPION}", dst_path=tmp)
        return {
            "run_id": run_id,
            "experiment_id": run.info.experiment_id,
            "artifact_uri": run.info.artifact_uri,
            "status": run.info.status,
            "params": run.data.params,
            "dev_scores": [m.value for m in sorted(c.get_metric_history(run_id, "dev_score"), key=lambda m: m.step)],
            "artifact_text": report.read_text(encoding="utf-8"),
            "champion_version": champion.version,
            "champion_run_id": champion.run_id,
            "champion_predicts": list(model.predict(pd.DataFrame({"text": spec["predict"]}))),
        }


def main() -> None:
    spec = json.loads(sys.argv[1])
    run_id, version = log_and_register(spec)
    out = read_back(run_id, spec)
    out["registered_version"] = version
    print(json.dumps(out))


if __name__ == "__main__":
    main()
