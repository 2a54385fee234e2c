"""Starting or joining Ray, the same way for a training run and a sweep."""

from __future__ import annotations

import os
import sys

from spanfirst import compat
from spanfirst.environ import restore
from spanfirst.serving.server import free_port

# Ray Train polls its workers every 2 s by default; each epoch report waited for that poll.
RAY_ENV = {compat.RAY_TRAIN_HEALTH_CHECK_ENV: "0.5"}
API = compat.RAY_API_SERVER_ENV


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
        api = os.environ.get(API) or _api_server_url(address)
        if api:
            env[API] = api
        ray.init(address=address, logging_level="WARNING", runtime_env={"env_vars": env})
        return
    reaped = reap_orphans()
    if reaped:
        print(f"spanfirst: stopped {reaped} Ray process(es) whose Ray node was gone (left by a driver that did "
              "not shut down)", file=sys.stderr)
    # A local Ray inherits this process's environment (no runtime env, so prestarted workers
    # stay usable); the variables are restored right after, other Ray users here are unaffected.
    port = free_port()
    env = {**RAY_ENV, API: f"http://127.0.0.1:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: v for k, v in env.items() if k == API or k not in os.environ})
    try:
        # address="local": a new Ray even when another one was started here with `ray start`
        # (ray.init() without an address would join that one)
        ray.init(address="local", logging_level="WARNING", include_dashboard=True, dashboard_host="127.0.0.1",
                 dashboard_port=port)
    finally:
        restore(saved)


def reap_orphans() -> int:
    """Kill this user's Ray processes whose raylet is gone; returns how many.

    A driver killed without shutting Ray down (SIGKILL, a lost terminal) takes its local node's
    raylet with it, but the node's dashboard and runtime-env agents (and idle workers) live on,
    holding memory and ports, and pile up with every such driver. Each Ray process names its
    raylet in ``RAY_RAYLET_PID``; one whose raylet no longer runs serves no cluster, so stopping
    it touches nobody's running Ray.
    """
    import psutil

    reaped = 0
    for proc in orphan_processes():
        try:
            proc.kill()
            reaped += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return reaped


def orphan_processes() -> list:
    """This user's Ray processes (``ray::...``) whose raylet (``RAY_RAYLET_PID``) no longer runs."""
    import psutil

    uid, found = os.getuid(), []
    for proc in psutil.process_iter(["cmdline", "uids"]):
        try:
            cmd, uids = proc.info["cmdline"] or [], proc.info["uids"]
            if uids is None or uids.real != uid or not cmd or not cmd[0].startswith("ray::"):
                continue
            raylet = proc.environ().get("RAY_RAYLET_PID", "")
            if raylet.isdigit() and not _is_raylet(int(raylet)):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _is_raylet(pid: int) -> bool:
    import psutil

    try:
        cmd = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return bool(cmd) and os.path.basename(cmd[0]) == "raylet"


def _api_server_url(address: str) -> str | None:
    """The cluster's dashboard (state API) URL, read from its GCS; None for ``auto`` or when unknown."""
    if address == "auto" or address.startswith("ray://"):
        return None
    try:
        value = compat.ray_dashboard_address(address)
    except Exception:  # no dashboard, or an address Ray resolves differently: Ray finds it itself
        return None
    return f"http://{value}" if value else None
