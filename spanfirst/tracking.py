"""Low-level MLflow helpers shared by training, registration, the sweep driver, its trials and
the Ray Train controller (a sweep's runs themselves: :class:`spanfirst.sweep.runs.SweepRuns`).

Everything goes through an explicit :class:`mlflow.MlflowClient` for a given tracking URI, not
MLflow's process-global "active run", because one sweep logs from several processes (driver,
trial actors, Train controllers) and, against a tracking server, from several nodes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spanfirst import compat
from spanfirst.environ import restore

DEFAULT_DB = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
CHAMPION = "champion"
URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")  # what mlflow.set_*_uri export
_MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value
# Numbers the loop and the trials report that are not metrics: wall-clock stamps and a process id.
NOT_METRICS = frozenset({"first_step_at", "reported_at", "trial_pid", "trial_process_started_at"})
# What an experiment holds, for MLflow's UI ("genai_development", "custom_model_development",
# "finetuning", ...); set where missing, never over a user's choice. MLflow 3.0-3.x UIs without the
# GenAI / Model training switch open an experiment by it; the UI of mlflow 3.17 ignores it and
# opens every experiment in the browser's remembered mode (GenAI "Overview" at first), so the
# links printed for people carry the mode themselves (:func:`runs_page`).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
UI_RUNS_MODE = "workflowType=machine_learning"  # the UI's "Model training" mode (mlflow 3.17)
LOCAL_UI = "http://127.0.0.1:5000"  # where ``mlflow ui`` serves by default


def resolve_tracking_uri(cli: str | None = None, space_file: str | None = None) -> str:
    """CLI, then the space file, then ``MLFLOW_TRACKING_URI``, then ``sqlite:///mlflow.db`` here.

    Local stores are made absolute: Ray runs trials in other working directories.
    """
    uri = cli or space_file or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_DB}"
    db = sqlite_file(uri)
    if db is not None and not db.is_absolute():
        uri = f"sqlite:///{db.resolve()}"
    elif "://" not in uri:  # a plain folder: MLflow's file store
        uri = Path(uri).resolve().as_uri()
    return uri


@contextmanager
def use_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking *and* registry URI set to ``uri`` for the block, then restored.

    ``mlflow.start_run``, ``log_model``, ``register_model`` and ``pyfunc.load_model`` read the
    process-wide URIs; a registry URI left from elsewhere (``MLFLOW_REGISTRY_URI``) would register
    the model in another registry than the one its runs are in. ``mlflow.set_*_uri`` also export
    both as environment variables (child processes inherit them), so those are restored too.
    """
    import mlflow

    saved_env = {k: os.environ.get(k) for k in URI_ENV}
    saved = compat.mlflow_set_uris()  # None where never set: restored as "not set", not as a default
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        compat.mlflow_restore_uris(*saved)
        restore(saved_env)


def sqlite_file(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` store; None for any other store."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def artifact_root(uri: str) -> str | None:
    """Where new experiments keep artifacts: ``mlartifacts`` beside a SQLite file; a server decides itself."""
    db = sqlite_file(uri)
    return None if db is None else (db.parent / ARTIFACTS_DIR).resolve().as_uri()


def client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def open_store_in_background(uri: str, experiment: str) -> threading.Thread:
    """Get MLflow ready in a daemon thread, so that it overlaps other start-up work such as Ray's:
    import its client and store code (about 3 s on 2 cores) and open a store that exists (a server,
    a database, a SQLite file that is there). A SQLite file not there yet is not created: a sweep
    refused before it starts leaves no store behind. Nothing is written; join the thread before the
    first real call, which raises whatever went wrong here."""

    def open_store() -> None:
        try:
            from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as _Registry  # noqa: F401
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as _Tracking  # noqa: F401

            db = sqlite_file(uri)
            if db is not None and not db.exists():
                return
            c = client(uri)
            c.get_experiment_by_name(experiment)
            c.search_registered_models(max_results=1)
        except Exception:  # the first real call says it, with its own context
            pass

    thread = threading.Thread(target=open_store, name="mlflow-store", daemon=True)
    thread.start()
    return thread


def ensure_experiment(uri: str, name: str) -> str:
    """The experiment's id, created (with artifacts beside a SQLite store) if missing; tagged as
    a model-development experiment (:data:`EXPERIMENT_KIND_TAG`) unless it already has a kind."""
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is None:
        return c.create_experiment(name, artifact_location=artifact_root(uri),
                                   tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    if exp.lifecycle_stage == "deleted":
        c.restore_experiment(exp.experiment_id)
    if EXPERIMENT_KIND_TAG not in exp.tags:
        c.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


def runs_page(uri: str, experiment_id: str) -> str:
    """How a person opens an experiment's training runs in the MLflow UI: the runs page in the
    "Model training" mode (MLflow 3.17 otherwise opens its GenAI overview); for a local store,
    the ``mlflow ui`` command that serves it first."""
    path = f"#/experiments/{experiment_id}/runs?{UI_RUNS_MODE}"
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/{path}"
    return f"mlflow ui --backend-store-uri {uri}, then {LOCAL_UI}/{path}"


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr_heads": 1e-4}}`` -> ``{"train.lr_heads": 1e-4}``: param names = config paths."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text[:_MAX_PARAM_CHARS]


def log_params(uri: str, run_id: str, params: dict[str, Any]) -> None:
    """Log params in batches of 100 (MLflow's per-request limit); already-logged keys are skipped."""
    from mlflow.entities import Param

    c = client(uri)
    have = c.get_run(run_id).data.params
    todo = [Param(k, param_value(v)) for k, v in params.items() if k not in have]
    for lo in range(0, len(todo), 100):
        c.log_batch(run_id, params=todo[lo : lo + 100])


def log_metrics(uri: str, run_id: str, metrics: dict[str, Any], step: int) -> None:
    """Finite numeric metrics only (the loop also reports flags and strings), and no wall-clock
    stamps or process ids (:data:`NOT_METRICS`, what the sweep's start-up measure reads)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, step) for k, v in metrics.items()
             if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)
             and math.isfinite(float(v))]
    for lo in range(0, len(batch), 1000):
        client(uri).log_batch(run_id, metrics=batch[lo : lo + 1000])


def log_datasets(uri: str, run_id: str, data: dict[str, dict[str, Any]]) -> None:
    """The run's data files as MLflow dataset inputs (the UI's Dataset column), one per split,
    with the reader's summary as the profile; ``data``: split -> :mod:`spanfirst.data.summary` dict."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = []
    for split, summary in data.items():
        if not summary:
            continue
        source = summary["file"]
        profile = {k: v for k, v in summary.items() if k not in ("file", "digest")}
        inputs.append(DatasetInput(
            Dataset(name=Path(source).name, digest=summary["digest"],
                    source_type="local" if "://" not in source else source.split("://", 1)[0],
                    source=json.dumps({"uri": source}), profile=json.dumps(profile, ensure_ascii=False)),
            tags=[InputTag(MLFLOW_DATASET_CONTEXT, split)]))
    if inputs:
        client(uri).log_inputs(run_id, datasets=inputs)


def log_evaluation_artifacts(uri: str, run_id: str, checkpoint_dir: str | Path) -> list[str]:
    """The checkpoint's evaluation report and its confusion matrices (JSON + PNG) on a run.

    Logged each time the trial's best checkpoint changes, so what the run shows is the best
    epoch's. Returns the artifact names.
    """
    from spanfirst import checkpoint as ckpt
    from spanfirst.plots import write_confusion_files
    from spanfirst.tasks import get_task

    saved = ckpt.read(checkpoint_dir)
    metrics = saved.metrics()
    report = metrics.get("report") or {}
    matrices = get_task(saved.task).confusion_matrices(saved.cfg, saved.labels, report)
    c = client(uri)
    with tempfile.TemporaryDirectory(prefix="spanfirst-eval-") as tmp:
        out = Path(tmp)
        (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
        names = ["report.json", *write_confusion_files(matrices, out, f" (epoch {metrics.get('epoch')})")]
        c.log_artifacts(run_id, str(out), artifact_path="evaluation")
    c.set_tag(run_id, "spanfirst.best_epoch", str(metrics.get("epoch")))
    return names


def champion_score(uri: str, name: str, metric: str) -> tuple[str | None, float | None]:
    """(version, score on ``metric``) of the model holding the ``champion`` alias, if any."""
    from mlflow.exceptions import MlflowException

    c = client(uri)
    try:
        mv = c.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None
    if mv.tags.get("spanfirst.metric") == metric and "spanfirst.score" in mv.tags:
        return mv.version, float(mv.tags["spanfirst.score"])
    if mv.run_id:  # registered by other means: its run's metric, if it logged one
        value = c.get_run(mv.run_id).data.metrics.get(metric)
        return mv.version, None if value is None else float(value)
    return mv.version, None


def promote_if_better(uri: str, name: str, version: str, metric: str, score: float) -> tuple[bool, str]:
    """Give ``version`` the champion alias only if it beats the current champion on ``metric``.

    A sweep never silently demotes a better model: a champion that cannot be compared (no score
    on this metric) keeps the alias. Returns (promoted, a sentence saying what happened).
    """
    c = client(uri)
    c.set_model_version_tag(name, version, "spanfirst.metric", metric)
    c.set_model_version_tag(name, version, "spanfirst.score", repr(float(score)))
    current, best = champion_score(uri, name, metric)
    if current is None:
        c.set_registered_model_alias(name, CHAMPION, version)
        return True, f"version {version} is the first champion of {name} ({metric} {score:.4f})"
    if best is None:
        return False, (f"version {version} registered without the alias: champion version {current} has no "
                       f"{metric} to compare against, so it keeps the alias")
    if score > best:
        c.set_registered_model_alias(name, CHAMPION, version)
        return True, f"version {version} ({metric} {score:.4f}) beats champion version {current} ({best:.4f}): now champion"
    return False, (f"version {version} ({metric} {score:.4f}) does not beat champion version {current} "
                   f"({best:.4f}): registered without the alias")
