"""Register a finished training run's best checkpoint (``pipelines/train.py --register``).

One MLflow run per training run (params named by config path, per-epoch metrics at
``step=epoch``), the checkpoint logged as the pyfunc model and registered; the ``champion``
alias follows the sweep's rule (:func:`spanfirst.tracking.promote_if_better` on ``dev_score``),
so a training run never demotes a better champion, whichever way either was registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spanfirst import checkpoint as ckpt
from spanfirst import tracking

if TYPE_CHECKING:
    from spanfirst.config import RunConfig

METRIC = "dev_score"  # the sweep's default metric: strict span F1 (NER), micro F1 (RE)
DEFAULT_EXPERIMENT = "spanfirst-train"


@dataclass
class Registration:
    name: str
    version: str
    champion: bool
    message: str
    run_id: str
    model_uri: str
    tracking_uri: str


def register_checkpoint(checkpoint: str | Path, cfg: RunConfig, history: list[dict[str, Any]], score: float,
                        name: str, tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT,
                        model_config: dict[str, Any] | None = None) -> Registration:
    """Log ``checkpoint`` (the run's best, scoring ``score`` on dev_score) in a new MLflow run and
    register it under ``name``; promote it to champion only if it beats the current one."""
    uri = tracking.resolve_tracking_uri(tracking_uri)
    c = tracking.client(uri)
    run_id = c.create_run(tracking.ensure_experiment(uri, experiment), run_name=cfg.name,
                          tags={"spanfirst.task": cfg.task, "spanfirst.source": "pipelines/train.py"}).info.run_id
    try:
        tracking.log_params(uri, run_id, tracking.flatten(cfg.to_dict()))
        tracking.log_datasets(uri, run_id, (ckpt.read(checkpoint).metrics().get("report") or {}).get("data", {}))
        for row in history:
            tracking.log_metrics(uri, run_id, row, step=int(row.get("epoch", 0)))
        tracking.log_metrics(uri, run_id, {f"best_{METRIC}": score}, step=0)
        reg = register_in_run(uri, run_id, checkpoint, cfg.task, name, METRIC, score, model_config=model_config)
    except BaseException:
        c.set_terminated(run_id, status="FAILED")
        raise
    c.set_terminated(run_id, status="FINISHED")
    return reg


def register_in_run(uri: str, run_id: str, checkpoint: str | Path, task: str, name: str, metric: str, score: float,
                    version_tags: dict[str, str] | None = None,
                    model_config: dict[str, Any] | None = None) -> Registration:
    """Log a local ``checkpoint`` as the pyfunc model of run ``run_id``, register it as ``name``
    and give it the champion alias only if it beats the current champion on ``metric``.

    The one registration path of ``pipelines/train.py --register`` and of a sweep's best trial.
    MLflow's process-wide URIs are ``uri`` only for the block (``log_model`` and
    ``register_model`` read them) and restored after it.
    """
    import mlflow

    from spanfirst.serving.log_model import log_checkpoint_model

    with tracking.use_uri(uri), mlflow.start_run(run_id=run_id):
        info, version = log_checkpoint_model(checkpoint, task, name, model_config=model_config)
    number = str(version.version)  # an int from register_model, a str from the client
    c = tracking.client(uri)
    for key, value in (version_tags or {}).items():
        c.set_model_version_tag(name, number, key, value)
    promoted, message = tracking.promote_if_better(uri, name, number, metric, score)
    c.set_tag(run_id, "spanfirst.registered", f"{name} v{number}{' (champion)' if promoted else ''}")
    return Registration(name, number, promoted, message, run_id, info.model_uri, uri)


def registration_report(reg: Registration) -> str:
    """What ``pipelines/train.py --register`` and ``pipelines/sweep.py`` print last: the version
    registered, what happened to the champion alias, and the command that serves the champion."""
    return "\n".join([
        f"registered model: {reg.name} version {reg.version}{' (alias champion)' if reg.champion else ''}",
        reg.message,
        "",
        "serve the champion:",
        f"  export MLFLOW_TRACKING_URI={reg.tracking_uri}",
        f"  mlflow models serve -m models:/{reg.name}@{tracking.CHAMPION} --env-manager local -h 127.0.0.1 -p 5001",
    ])
