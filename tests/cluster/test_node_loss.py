"""A node lost mid-sweep (the scenario of ``benchmarks.faults``): its trial moves to another
node and finishes there, resumed from its latest checkpoint in the same MLflow run
(``trial.max_failures: auto`` is 2 on a multi-node cluster). The node is a real Ray node of
``ray.cluster_utils.Cluster`` whose raylet and worker processes are killed (``remove_node``), as a
reclaimed spot instance's are."""

from __future__ import annotations

import pytest

from benchmarks.faults import measure_node_loss, mlflow_steps

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


@pytest.mark.slow
def test_a_lost_node_moves_its_trial_to_another_node(tmp_path, ray_cluster, sweep_tools):
    from mlflow import MlflowClient

    cluster = ray_cluster.cluster
    got = measure_node_loss(tmp_path, lambda: cluster.add_node(num_cpus=1), cluster.remove_node,
                            ray_cluster.address, SPACE.format(base=sweep_tools.configs / "quickstart_ner.yaml"))
    assert got["returncode"] == 0, got["out"][-6000:]
    assert "registered model: node-loss-ner version 1 (alias champion)" in got["out"], got["out"][-3000:]
    # the feature cache lives on the driver's node, so losing a worker node does not lose it
    assert "tokenised data: built 1x for 1 distinct setting(s)" in got["out"], got["out"][-3000:]

    rows = got["reports"][got["lost"]]
    moved = [r for r in rows if r["node_id"] != got["node_id"]]
    before = [r["epoch"] for r in rows if r["node_id"] == got["node_id"]]
    assert moved and moved[0]["node_id"] in ray_cluster.worker_ids  # finished on a surviving worker node
    assert moved[0]["epoch"] == max(before) + 1 and moved[-1]["epoch"] == 3  # resumed, not started again

    runs = mlflow_steps(got["uri"], "node-loss")
    assert len(runs) == 3
    for trial_id, (status, steps, _) in runs.items():
        assert status == "FINISHED" and steps == [1, 2, 3], (trial_id, status, steps)
    assert runs[got["lost"]][2] == "1"
    c = MlflowClient(got["uri"])
    run = next(r for r in c.search_runs([c.get_experiment_by_name("node-loss").experiment_id])
               if r.data.tags.get("spanfirst.trial_id") == got["lost"])
    assert got["node_id"] in run.data.tags["ray.node_ids"] and run.data.tags["ray.node_id"] == moved[0]["node_id"]
