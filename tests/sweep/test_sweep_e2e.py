"""A real sweep end to end: Ray Tune ASHA over Ray Train trials, logged to a real MLflow server.

RE on the bundled KLUE-RE sample (tiny backbone, 300 training rows): four trials, ASHA stops the
weaker ones after their first epoch; then a second, worse sweep must register a new version
without taking the ``champion`` alias. The second one runs in this process (``pipelines/sweep.py``'s
``main``), to check that a sweep leaves MLflow's process-wide URIs and environment as it found them.
"""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from spanfirst import compat, tracking


SPACE = """\
base: {base}
scheduler: {{grace_period: 1, reduction_factor: 2, max_epochs: {epochs}}}
search: {{algorithm: random, num_samples: {samples}, max_concurrent: 2, seed: {seed}}}
trial: {{workers: 1, cpus_per_worker: 1}}
mlflow: {{experiment: e2e-sweep, registered_model: e2e-re}}
overrides: {{data.max_train_examples: 300, data.max_dev_examples: 100, train.early_stopping_patience: 0}}
space:
  re.focal_gamma: {{choice: [0.0, 2.0]}}
  train.lr_backbone: {lr}
"""


def mlflow_state() -> tuple:
    import mlflow

    return (compat.mlflow_set_uris(), mlflow.get_tracking_uri(), mlflow.get_registry_uri(),
            {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")})


def run_sweep_here(sweep_tools, *args: str) -> int:
    """``pipelines/sweep.py`` run in this process (its own local Ray, shut down after)."""
    import ray

    spec = importlib.util.spec_from_file_location("_sweep_pipeline", sweep_tools.script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        return module.main(list(args))
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_sweep_logs_trials_and_registers_the_champion(tmp_path, mlflow_server, sweep_tools, monkeypatch, capsys,
                                                     chromium):
    from mlflow import MlflowClient

    good = sweep_tools.write_space(tmp_path / "good.yaml", SPACE.format(base=sweep_tools.configs / "quickstart_re.yaml", epochs=2, samples=4,
                                                           seed=1, lr="{choice: [1.0e-8, 3.0e-3]}"))
    out = sweep_tools.run(good, tmp_path, "--tracking-uri", mlflow_server, "--storage", str(tmp_path / "runs"))
    assert "registered model: e2e-re version 1 (alias champion)" in out, out
    # The sweep's own last line is the serve command; a Ray actor's late log line may still follow it.
    assert ("serve the champion:\n  export MLFLOW_TRACKING_URI=" in out
            and "  mlflow models serve -m models:/e2e-re@champion --env-manager local -h 127.0.0.1 -p 5001\n" in out), out
    assert f"export MLFLOW_TRACKING_URI={mlflow_server}" in out
    # Tokenised once for the one setting (focal gamma and lr leave the features alone), by the
    # first trial; the other three got it from the sweep's feature cache.
    assert "tokenised data: built 1x for 1 distinct setting(s), reused by 3 trial(s)" in out, out

    c = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    exp = c.get_experiment_by_name("e2e-sweep")
    runs = c.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("spanfirst.kind") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["space_file"] == "good.yaml" and parent.data.params["search.seed"] == "1"
    for tag in ("mlflow.source.git.commit", "ray_version", "torch_version"):
        assert parent.data.tags.get(tag), tag
    assert parent.data.metrics["trials"] == 4
    # the data files are the runs' dataset inputs (the UI's Dataset column), with the reader's summary
    inputs = {i.tags[0].value: i.dataset for i in c.get_run(parent.info.run_id).inputs.dataset_inputs}
    assert set(inputs) == {"train", "dev"}
    profile = json.loads(inputs["train"].profile)
    assert profile["examples"] > 0 and sum(profile["labels"].values()) == profile["examples"]
    assert profile["skipped_rows"] == 0 and profile["offsets"] in ("inclusive", "exclusive")
    parent_files = {a.path for d in ("space", "sweep") for a in c.list_artifacts(parent.info.run_id, d)}
    assert {"space/good.yaml", "space/resolved_space.json", "sweep/trials.csv", "sweep/progress.png"} <= parent_files
    table = c.download_artifacts(parent.info.run_id, "sweep/trials.csv", str(tmp_path))
    assert len(open(table, encoding="utf-8").read().strip().splitlines()) == 1 + 4

    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4
    assert len({r.data.tags["spanfirst.trial_id"] for r in children}) == 4
    statuses = {r.data.tags["spanfirst.trial_id"]: r.data.tags["spanfirst.status"] for r in children}
    assert set(statuses.values()) <= {"completed", "stopped_by_asha"}, statuses
    assert "stopped_by_asha" in statuses.values() and "completed" in statuses.values(), statuses
    seeds = set()
    for run in children:
        params, tags = run.data.params, run.data.tags
        # params are named exactly as the config paths; the sampled ones differ per trial
        assert {"re.focal_gamma", "train.lr_backbone", "train.seed", "train.epochs", "data.max_train_examples"} <= set(params)
        assert params["train.epochs"] == "2" and params["train.num_workers"] == "1"
        seeds.add(params["train.seed"])
        history = c.get_metric_history(run.info.run_id, "dev_score")
        steps = sorted(m.step for m in history)
        assert steps == list(range(1, len(steps) + 1)) and steps, steps  # step = epoch, once each
        assert run.data.metrics["trial_overhead_seconds"] > 0
        # the run lasts as long as its trial did (start: the trial's start; end: its last epoch
        # report), not from the driver's first look to its close after the whole sweep
        lasted = (run.info.end_time - run.info.start_time) / 1000
        # (the end is the epoch metric's own timestamp, logged after the elapsed time was taken and
        # after the first report's MLflow calls: seconds later on a loaded machine)
        assert -0.5 < lasted - run.data.metrics["trial_elapsed_seconds"] < 6.0, (lasted, run.data.metrics)
        child_inputs = c.get_run(run.info.run_id).inputs.dataset_inputs
        assert sorted(i.dataset.digest for i in child_inputs) == sorted(d.digest for d in inputs.values())
        if tags["spanfirst.status"] == "stopped_by_asha":
            assert run.info.status == "KILLED" and len(steps) < 2
        else:
            assert run.info.status == "FINISHED" and len(steps) == 2
        files = {a.path for a in c.list_artifacts(run.info.run_id, "evaluation")}
        assert {"evaluation/report.json", "evaluation/relation_confusion.json",
                "evaluation/relation_confusion.png"} <= files, files
        conf = json.load(open(c.download_artifacts(run.info.run_id, "evaluation/relation_confusion.json",
                                                  str(tmp_path / run.info.run_id)), encoding="utf-8"))
        assert len(conf["matrix"]) == len(conf["labels"]) > 2
    assert len(seeds) == 4  # a per-trial seed, derived from the sweep seed and the trial number

    champion = c.get_model_version_by_alias("e2e-re", "champion")
    assert champion.version == "1"
    best_score = float(champion.tags["spanfirst.score"])
    assert champion.tags["spanfirst.metric"] == "dev_score"
    assert best_score == pytest.approx(max(r.data.metrics.get("best_dev_score", 0) for r in children))

    # What a person sees: the link the sweep printed opens the training runs (not MLflow 3's GenAI
    # overview) in a real browser: the sweep's run with the champion in its Models column, and
    # its trials, each with its own duration, once the sweep's row is expanded.
    link = next(line for line in out.splitlines() if line.startswith("the runs in MLflow's UI: "))
    url = link.split(": ", 1)[1]
    assert url == f"{mlflow_server}/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning", link
    page = chromium()
    page.goto(url)
    sweep_row = page.get_by_role("link", name=parent.info.run_name)
    sweep_row.wait_for(timeout=60_000)
    assert "/runs" in page.url and "overview" not in page.url, page.url
    champion_link = page.locator('a[href="#/models/e2e-re/versions/1"]')
    assert champion_link.count() == 1 and champion_link.inner_text().split() == ["e2e-re", "v1"]
    page.locator('[role="gridcell"][col-id*="Run Name"] button').first.click()  # expand the sweep's run
    for run in children:
        page.get_by_role("link", name=run.info.run_name).wait_for(timeout=30_000)
    durations = page.locator('[role="gridcell"][col-id*="duration" i]').all_inner_texts()
    assert len(durations) == 5 and all(d.strip().endswith(("s", "min")) for d in durations), durations

    import mlflow
    import pandas as pd

    with tracking.use_uri(mlflow_server):
        model = mlflow.pyfunc.load_model("models:/e2e-re@champion")
    pred = model.predict(pd.DataFrame({
        "text": ["이순신은 조선 중기의 무신이다."], "subject_start": [0], "subject_end": [3], "subject_type": ["PER"],
        "object_start": [5], "object_end": [7], "object_type": ["LOC"]}))
    assert list(pred.columns) == ["label", "score", "probs"] and len(pred) == 1

    # A worse sweep (near-zero learning rate, one epoch): registered, but the champion stays. In
    # this process, with a registry URI left in the environment: the sweep registers beside its
    # runs all the same and leaves URIs and environment as they were. Its trial has two workers:
    # a Ray Train job (DDP over gloo) running the same loop as the single-worker trials above.
    bad = sweep_tools.write_space(tmp_path / "bad.yaml", SPACE.format(base=sweep_tools.configs / "quickstart_re.yaml", epochs=1, samples=1,
                                                         seed=2, lr="{loguniform: [1.0e-8, 2.0e-8]}"))
    stale = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", stale)
    monkeypatch.setenv("RAY_DEDUP_LOGS", "1")
    monkeypatch.chdir(tmp_path)
    before = mlflow_state()
    capsys.readouterr()
    code = run_sweep_here(sweep_tools, str(bad), "--tracking-uri", mlflow_server, "--storage", str(tmp_path / "runs"),
                          "--num-samples", "1", "--workers-per-trial", "2")
    out2 = capsys.readouterr().out
    assert code == 0, out2[-6000:]
    assert mlflow_state() == before
    assert os.environ["MLFLOW_REGISTRY_URI"] == stale and not (tmp_path / "elsewhere.db").exists()
    assert "registered model: e2e-re version 2" in out2 and "(alias champion)" not in out2, out2
    assert "does not beat champion version 1" in out2, out2
    assert c.get_model_version_by_alias("e2e-re", "champion").version == "1"
    assert float(c.get_model_version("e2e-re", "2").tags["spanfirst.score"]) < best_score
    ddp = [r for r in c.search_runs([exp.experiment_id], max_results=100) if r.data.tags.get("spanfirst.kind") != "sweep"
           and r.data.params.get("train.num_workers") == "2"]
    assert len(ddp) == 1 and ddp[0].info.status == "FINISHED" and ddp[0].data.metrics["epoch"] == 1
