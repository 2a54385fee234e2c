"""Fixtures of the cluster tests: the sweep tests' real ``mlflow_server`` and ``sweep_tools``
(loaded from tests/sweep/conftest.py, not copied) and a multi-node Ray cluster on this machine."""

from __future__ import annotations

import importlib.util
import os
import secrets
from pathlib import Path
from types import SimpleNamespace

import pytest

from spanfirst.environ import restore

_spec = importlib.util.spec_from_file_location("_sweep_conftest", Path(__file__).parents[1] / "sweep" / "conftest.py")
_sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_sweep)
mlflow_server = _sweep.mlflow_server
sweep_tools = _sweep.sweep_tools

# Token authentication on, as cluster.yaml has it on every node; with a throwaway token of this
# test's (Ray's own default, ~/.ray/auth_token, is neither read nor written).
CLUSTER_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_DEDUP_LOGS": "1"}


@pytest.fixture(scope="module")
def ray_cluster():
    """A real Ray cluster of three nodes on this machine (``ray.cluster_utils.Cluster``): a head
    with no CPU (like cluster.yaml's head, which runs no training) and two worker nodes of one CPU
    each, so two one-worker trials running at once must train on different nodes."""
    from ray._raylet import AuthenticationTokenLoader, Config
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in (*CLUSTER_ENV, "RAY_AUTH_TOKEN_PATH")}
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    os.environ.update(CLUSTER_ENV)  # the nodes' processes inherit it
    Config.initialize("")  # and this process re-reads it (Ray caches its config; as ray.init does)
    AuthenticationTokenLoader.instance().reset_cache()
    cluster = None
    try:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "include_dashboard": True, "dashboard_host": "127.0.0.1",
            "dashboard_port": _sweep.free_port()})
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        yield SimpleNamespace(address=cluster.address, head_id=cluster.head_node.node_id,
                              worker_ids={n.node_id for n in workers}, cluster=cluster)
    finally:
        if cluster is not None:
            cluster.shutdown()
        restore(saved)
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
