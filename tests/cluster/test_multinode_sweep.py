"""A tiny real sweep on a real multi-node Ray cluster: trials train on different nodes, every
MLflow run arrives at the tracking server, and a local ``--storage`` folder is refused on a
multi-node cluster unless declared shared (here the nodes share this machine's disk, so it is)."""

from __future__ import annotations

import os
import subprocess

import pytest

SPACE = """\
base: {base}
scheduler: {{grace_period: 1, reduction_factor: 2, max_epochs: 1}}
search: {{algorithm: random, num_samples: 2, max_concurrent: 2, seed: 3}}
trial: {{workers: 1, cpus_per_worker: 1}}
mlflow: {{experiment: cluster-sweep, registered_model: cluster-ner}}
overrides: {{data.max_train_examples: 80, data.max_dev_examples: 40, train.early_stopping_patience: 0}}
space:
  train.lr_heads: {{loguniform: [1.0e-3, 3.0e-3]}}
"""


def _sweep(sweep_tools, space, cwd, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(sweep_tools.cmd(space, *args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})


@pytest.mark.slow
def test_local_storage_is_refused_on_a_multinode_cluster(tmp_path, ray_cluster, sweep_tools):
    space = sweep_tools.write_space(tmp_path / "space.yaml", SPACE.format(base=sweep_tools.configs / "quickstart_ner.yaml"))
    storage = tmp_path / "local"
    out = _sweep(sweep_tools, space, tmp_path, "--address", ray_cluster.address, "--storage", str(storage),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert out.returncode == 2, out.stdout + out.stderr
    error = out.stderr.strip().splitlines()[-1]
    assert error.startswith("error: --storage ") and str(storage) in error, error
    assert "is a local folder, but the Ray cluster has 3 nodes" in error, error
    assert "s3://" in error and "--shared-storage" in error, error
    assert not storage.exists() and not (tmp_path / "mlflow.db").exists()  # refused before anything started


@pytest.mark.slow
def test_sweep_trials_run_on_several_nodes_and_log_to_the_server(tmp_path, ray_cluster, mlflow_server, sweep_tools):
    from mlflow import MlflowClient

    space = sweep_tools.write_space(tmp_path / "space.yaml", SPACE.format(base=sweep_tools.configs / "quickstart_ner.yaml"))
    shared = tmp_path / "shared"  # every node of this cluster sees this machine's disk
    # The cluster's address as `ray job submit` hands it to a driver: $RAY_ADDRESS, no --address.
    out = _sweep(sweep_tools, space, tmp_path, "--tracking-uri", mlflow_server,
                 "--storage", shared.as_uri(), "--shared-storage", RAY_ADDRESS=ray_cluster.address)
    assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
    assert "registered model: cluster-ner version 1 (alias champion)" in out.stdout, out.stdout

    c = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    exp = c.get_experiment_by_name("cluster-sweep")
    runs = c.search_runs([exp.experiment_id], max_results=50)
    parents = [r for r in runs if r.data.tags.get("spanfirst.kind") == "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 2, [r.data.tags for r in children]
    nodes = {r.data.tags["ray.node_id"] for r in children}
    assert len(nodes) == 2 and nodes <= ray_cluster.worker_ids, (nodes, ray_cluster.worker_ids)
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["spanfirst.status"] == "completed"
        assert [m.step for m in c.get_metric_history(run.info.run_id, "dev_score")] == [1]
        assert {a.path for a in c.list_artifacts(run.info.run_id, "evaluation")} >= {"evaluation/report.json"}

    # Tune's and Train's results, and the sweep's own files, are on the shared storage.
    (exp_dir,) = [p for p in shared.iterdir() if p.is_dir()]
    assert (exp_dir / "sweep.json").is_file() and (exp_dir / "trials.csv").is_file()
    assert len(list((exp_dir / "trials").iterdir())) == 2
