"""Every private or version-specific Ray / MLflow call the library makes, in one place.

Each function says why the public API does not do and which versions it was checked against;
pyproject.toml bounds ray and mlflow above at the next minor release, and CI installs exactly
the checked versions. When a bound moves, re-check each function here (and the notes below).

Checked against: ray 2.60.0, mlflow 3.17.2.

Public but "DeveloperAPI" in Ray (may change between minor releases), used where they are needed
rather than wrapped here: ``ray.tune.integration.ray_train.TuneReportCallback`` and its
``after_report(run_context, metrics, checkpoint)`` hook (spanfirst/sweep/trial.py).

Nothing here imports Ray or MLflow at module import: importing spanfirst stays cheap.
"""

from __future__ import annotations

# Environment variables Ray reads but does not document (names from Ray's internal constants).
# Ray Train V2's controller polls its workers this often (default 2 s); each epoch report waits
# for that poll. ray/train/v2/_internal/constants.py HEALTH_CHECK_INTERVAL_S_ENV_VAR, ray 2.60.
RAY_TRAIN_HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
# The dashboard (state API) URL a Ray process uses instead of scanning the machine for GCS
# processes. ray/_private/ray_constants.py RAY_API_SERVER_ADDRESS_ENVIRONMENT_VARIABLE, ray 2.60.
RAY_API_SERVER_ENV = "RAY_API_SERVER_ADDRESS"


def ray_dashboard_address(gcs_address: str) -> str | None:
    """The ``host:port`` of a running cluster's dashboard, read from its GCS key-value store.

    Why private: the driver needs the URL *before* ``ray.init`` (it goes into the job's runtime
    env), and Ray's public ``ray.experimental.internal_kv`` only works once connected. The head
    writes the address under ``ray_constants.DASHBOARD_ADDRESS`` in the dashboard namespace;
    ``ray._raylet.GcsClient`` reads it without joining. Checked: ray 2.60.0. Returns None when
    the key is missing; raises whatever Ray raises for an unreachable or odd address.
    """
    from ray._private import ray_constants
    from ray._raylet import GcsClient

    value = GcsClient(address=gcs_address).internal_kv_get(ray_constants.DASHBOARD_ADDRESS.encode(),
                                                          ray_constants.KV_NAMESPACE_DASHBOARD)
    return value.decode() if value else None


def mlflow_set_uris() -> tuple[str | None, str | None]:
    """(tracking, registry) URI as set in this process by ``mlflow.set_*_uri``; None where never set.

    Why private: ``mlflow.get_tracking_uri()`` / ``get_registry_uri()`` answer the *resolved*
    URI (the set one, else the environment, else a default); saving and restoring that would
    pin a URI in a process that had none, which then no longer follows ``MLFLOW_TRACKING_URI``.
    Only the module globals tell "never set" apart. Checked: mlflow 3.17.2
    (``mlflow.tracking._tracking_service.utils._tracking_uri``,
    ``mlflow.tracking._model_registry.utils._registry_uri``).
    """
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return tracking_utils._tracking_uri, registry_utils._registry_uri


def mlflow_restore_uris(tracking: str | None, registry: str | None) -> None:
    """Put back what :func:`mlflow_set_uris` returned, ``None`` meaning "not set".

    Through the public setters, which accept None although typed ``str``: ``set_tracking_uri(None)``
    clears it (and unsets ``MLFLOW_TRACKING_URI``) and resets the tracer provider as any change
    does; ``set_registry_uri(None)`` clears it and leaves the environment alone (the caller
    restores the environment variables). Checked: mlflow 3.17.2.
    """
    import mlflow

    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)


def quiet_ray_train_reports() -> None:
    """Silence Ray Train V2's INFO lines that print every report's whole metrics dict and every
    checkpoint's path on the console; the loop's progress lines say the same in one line per epoch.

    Why private: these are module loggers of ``ray/train/v2/_internal/execution``; ``context.py``
    names its logger by the module's file path (``logging.getLogger(__file__)``), ``storage.py`` by
    its module name. Checked: ray 2.60.0. A missing module (another Ray) is left alone.
    """
    import importlib.util
    import logging

    for module in ("ray.train.v2._internal.execution.context", "ray.train.v2._internal.execution.storage"):
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin:
            for name in (module, spec.origin):
                logging.getLogger(name).setLevel(logging.WARNING)
