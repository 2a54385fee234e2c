"""A node lost mid-sweep: its trial moves to another node and finishes there, resumed from its
latest checkpoint in the same MLflow run (``trial.max_failures: auto`` is 2 on a multi-node
cluster). The node is a real Ray node of ``ray.cluster_utils.Cluster`` whose raylet and worker
processes are killed (``remove_node``), as a reclaimed spot instance's are."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

SPACE = """\
base: {base}
scheduler: {{type: none, max_epochs: 3}}
search: {{algorithm: random, num_samples: 3, max_concurrent: 3, seed: 4}}
trial: {{workers: 1, cpus_per_worker: 1}}
mlflow: {{experiment: node-loss, registered_model: node-loss-ner}}
overrides: {{data.max_train_examples: 300, data.max_dev_examples: 40, train.early_stopping_patience: 0}}
space:
  train.lr_heads: {{loguniform: [1.0e-3, 3.0e-3]}}
"""


def node_reports(storage) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for path in storage.glob("*/run_trial_*/result.json"):
        try:
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, ValueError):
            continue
        for row in rows:
            if "node_id" in row:
                out.setdefault(row["trial_id"], []).append(row)
    return out


@pytest.mark.slow
def test_a_lost_node_moves_its_trial_to_another_node(tmp_path, ray_cluster, sweep_tools):
    from mlflow import MlflowClient

    cluster = ray_cluster.cluster
    spot = cluster.add_node(num_cpus=1)  # a third worker node, the one the cloud takes back
    cluster.wait_for_nodes()
    space = sweep_tools.write_space(tmp_path / "space.yaml", SPACE.format(base=sweep_tools.configs / "quickstart_ner.yaml"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    shared = tmp_path / "shared"  # every node of this cluster sees this machine's disk
    log = (tmp_path / "sweep.log").open("w")
    proc = subprocess.Popen(sweep_tools.cmd(space, "--address", ray_cluster.address, "--tracking-uri", uri,
                                            "--storage", shared.as_uri(), "--shared-storage"),
                            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RAY_DEDUP_LOGS": "1"})
    lost = None
    deadline = time.time() + 400
    try:
        while lost is None:
            assert proc.poll() is None, (tmp_path / "sweep.log").read_text()[-4000:]
            assert time.time() < deadline, "no trial reported from the third node"
            time.sleep(0.2)
            on_spot = [tid for tid, rows in node_reports(shared).items()
                       if rows[-1]["node_id"] == spot.node_id and rows[-1]["epoch"] < 3]
            if on_spot:
                lost = on_spot[0]
                cluster.remove_node(spot)  # mid-epoch: it reported an epoch and trains the next
        proc.wait(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    out = (tmp_path / "sweep.log").read_text()
    assert proc.returncode == 0, out[-6000:]
    assert "registered model: node-loss-ner version 1 (alias champion)" in out, out[-3000:]

    rows = node_reports(shared)[lost]
    moved = [r for r in rows if r["node_id"] != spot.node_id]
    before = [r["epoch"] for r in rows if r["node_id"] == spot.node_id]
    assert moved and moved[0]["node_id"] in ray_cluster.worker_ids  # finished on a surviving worker node
    assert moved[0]["epoch"] == max(before) + 1 and moved[-1]["epoch"] == 3  # resumed, not started again

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("node-loss")
    children = {r.data.tags["spanfirst.trial_id"]: r for r in c.search_runs([exp.experiment_id], max_results=50)
                if "mlflow.parentRunId" in r.data.tags}
    assert len(children) == 3
    for trial_id, run in children.items():
        assert run.info.status == "FINISHED" and run.data.tags["spanfirst.status"] == "completed", trial_id
        history = sorted(m.step for m in c.get_metric_history(run.info.run_id, "dev_score"))
        assert history == [1, 2, 3], (trial_id, history)
    run = children[lost]
    assert run.data.tags["spanfirst.restarts"] == "1"
    assert spot.node_id in run.data.tags["ray.node_ids"] and run.data.tags["ray.node_id"] == moved[0]["node_id"]
