"""Register a finished training run's best checkpoint (``pipelines/train.py --register``).

One MLflow run per training run (params named by config path, per-epoch metrics at
``step=epoch``), the checkpoint logged as the pyfunc model and registered; the ``champion``
alias follows the sweep's rule (:func:`spanfirst.tracking.promote_if_better` on ``dev_score``),
so a training run never demotes a better champion, whichever way either was registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spanfirst import tracking
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
    import mlflow

    from spanfirst.serving.log_model import log_checkpoint_model

    uri = tracking.resolve_tracking_uri(tracking_uri)
    c = tracking.client(uri)
    run_id = c.create_run(tracking.ensure_experiment(uri, experiment), run_name=cfg.name,
                          tags={"spanfirst.task": cfg.task, "spanfirst.source": "pipelines/train.py"}).info.run_id
    try:
        tracking.log_params(uri, run_id, tracking.flatten(cfg.to_dict()))
        for row in history:
            tracking.log_metrics(uri, run_id, row, step=int(row.get("epoch", 0)))
        tracking.log_metrics(uri, run_id, {f"best_{METRIC}": score}, step=0)
        with tracking.use_uri(uri), mlflow.start_run(run_id=run_id):
            info, version = log_checkpoint_model(checkpoint, cfg.task, name, model_config=model_config)
        number = str(version.version)
        promoted, message = tracking.promote_if_better(uri, name, number, METRIC, score)
        c.set_tag(run_id, "spanfirst.registered", f"{name} v{number}{' (champion)' if promoted else ''}")
    except BaseException:
        c.set_terminated(run_id, status="FAILED")
        raise
    c.set_terminated(run_id, status="FINISHED")
    return Registration(name, number, promoted, message, run_id, info.model_uri, uri)
