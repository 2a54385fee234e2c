"""Starting or joining Ray, the same way for a training run and a sweep."""

from __future__ import annotations

import os

from spanfirst.environ import restore

# Ray Train polls its workers every 2 s by default; each epoch report waited for that poll.
RAY_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init_ray(address: str | None) -> None:
    """Connect to ``address`` or start a new local Ray (once per process), with the settings above.

    A local Ray also gets its dashboard on a known free port, announced to every Ray process as
    ``RAY_API_SERVER_ADDRESS``: Ray Train's placement-group cleaner finds its cluster through
    the state API, which otherwise scans the machine for GCS processes and gives up when it
    finds several (another user's Ray, or one left by a killed driver) - and then the workers'
    placement group of every trial ASHA stops is never released.

    Without ``address`` a set ``RAY_ADDRESS`` (what ``ray job submit`` gives its driver) is used.
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    address = address or os.environ.get("RAY_ADDRESS")
    if address:  # a running cluster: its processes get the settings through the job's runtime env
        env = dict(RAY_ENV)
        api = os.environ.get("RAY_API_SERVER_ADDRESS") or _api_server_url(address)
        if api:
            env["RAY_API_SERVER_ADDRESS"] = api
        ray.init(address=address, logging_level="WARNING", runtime_env={"env_vars": env})
        return
    # A local Ray inherits this process's environment (no runtime env, so prestarted workers
    # stay usable); the variables are restored right after, other Ray users here are unaffected.
    port = _free_port()
    env = {**RAY_ENV, "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: v for k, v in env.items() if k == "RAY_API_SERVER_ADDRESS" or k not in os.environ})
    try:
        # address="local": a new Ray even when another one was started here with `ray start`
        # (ray.init() without an address would join that one)
        ray.init(address="local", logging_level="WARNING", include_dashboard=True, dashboard_host="127.0.0.1",
                 dashboard_port=port)
    finally:
        restore(saved)


def _api_server_url(address: str) -> str | None:
    """The cluster's dashboard (state API) URL, read from its GCS; None for ``auto`` or when unknown."""
    if address == "auto" or address.startswith("ray://"):
        return None
    try:
        from ray._raylet import GcsClient
        from ray._private import ray_constants

        value = GcsClient(address=address).internal_kv_get(ray_constants.DASHBOARD_ADDRESS.encode(),
                                                           ray_constants.KV_NAMESPACE_DASHBOARD)
    except Exception:  # no dashboard, or an address Ray resolves differently: Ray finds it itself
        return None
    return f"http://{value.decode()}" if value else None
