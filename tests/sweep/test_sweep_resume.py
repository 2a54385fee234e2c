"""``--resume`` after the sweep's driver is killed mid-sweep: finished trials are kept (not rerun,
their MLflow runs untouched) and no trial gets a second MLflow run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest


SPACE = """\
base: {base}
scheduler: {{grace_period: 1, reduction_factor: 2, max_epochs: 2}}
search: {{algorithm: random, num_samples: 4, max_concurrent: 1, seed: 5}}
trial: {{workers: 1, cpus_per_worker: 1}}
mlflow: {{experiment: resume-sweep, registered_model: resume-ner}}
overrides: {{data.max_train_examples: 200, data.max_dev_examples: 60, train.early_stopping_patience: 0}}
space:
  train.lr_heads: {{loguniform: [5.0e-4, 5.0e-3]}}
  ner.start_focal_gamma: {{choice: [0.0, 2.0]}}
"""


def _ray_core(driver_pid: int) -> list:
    """The raylet / GCS processes a driver started (its process group)."""
    import psutil

    out = []
    for p in psutil.process_iter(["name"]):
        try:
            if p.info["name"] in ("raylet", "gcs_server") and os.getpgid(p.pid) == driver_pid:
                out.append(p)
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
    return out


def child_runs(c, experiment_name: str):
    exp = c.get_experiment_by_name(experiment_name)
    if exp is None:
        return []
    return [r for r in c.search_runs([exp.experiment_id], max_results=100) if "mlflow.parentRunId" in r.data.tags]


def tune_terminated(storage: Path) -> set[str]:
    """Trials the Tune driver has recorded as finished in its saved experiment state."""
    states = sorted(storage.glob("resume-*/experiment_state-*.json"))
    if not states:
        return set()
    try:
        data = json.loads(states[-1].read_text(encoding="utf-8"))
    except (OSError, ValueError):  # being rewritten
        return set()
    out = set()
    for entry in data["trial_data"]:
        trial = json.loads(entry[0])
        if trial.get("status") == "TERMINATED":
            out.add(trial["trial_id"])
    return out


def result_lines(exp_dir: Path) -> dict[str, int]:
    """Tune's per-trial result.json line counts, by trial id (a rerun trial would change its file)."""
    out = {}
    for path in exp_dir.glob("run_trial_*/result.json"):
        trial_id = "_".join(path.parent.name.split("_")[2:4])
        out[trial_id] = len(path.read_text(encoding="utf-8").splitlines())
    return out


@pytest.mark.slow
def test_resume_after_the_driver_is_killed(tmp_path, sweep_tools):
    from mlflow import MlflowClient

    space = sweep_tools.write_space(tmp_path / "resume.yaml",
                                    SPACE.format(base=sweep_tools.configs / "quickstart_ner.yaml"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = tmp_path / "runs"
    args = ["--tracking-uri", uri, "--storage", str(storage)]
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen(sweep_tools.cmd(space, *args), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    c = MlflowClient(uri)
    finished: dict[str, object] = {}
    running = False
    deadline = time.time() + 300
    try:
        # Trials run one at a time: kill the driver once a trial is finished (its MLflow run closed and
        # Tune's saved state, what --resume reads, says so) while a later trial is training.
        while not (finished and running):
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-4000:]
            assert time.time() < deadline, "no trial finished in time"
            time.sleep(0.3)
            done = tune_terminated(storage)
            if done and (tmp_path / "mlflow.db").exists():
                runs = child_runs(c, "resume-sweep")
                finished = {r.data.tags["spanfirst.trial_id"]: r for r in runs
                            if r.info.status == "FINISHED" and r.data.tags["spanfirst.trial_id"] in done}
                running = any(r.info.status == "RUNNING" for r in runs)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the driver dies without any cleanup
        proc.wait()
        log.close()
    # What outlived it: its local Ray's raylet and GCS go with it, its agents and workers do not
    # (counted once their raylet is gone); the next start of a local Ray stops them.
    from spanfirst.train.ray_session import orphan_processes

    deadline = time.time() + 30
    while _ray_core(proc.pid) and time.time() < deadline:
        time.sleep(0.5)
    orphans = len(orphan_processes())
    exp_dir = next(storage.glob("resume-*"))
    lines_before = result_lines(exp_dir)
    kept = tune_terminated(storage)  # what --resume must not run again
    before = {r.data.tags["spanfirst.trial_id"]: r for r in child_runs(c, "resume-sweep")}
    assert len(before) < 4 and any(r.info.status == "RUNNING" for r in before.values()), "the sweep was not cut short"

    out = sweep_tools.run(space, tmp_path, *args, "--resume")
    assert "registered model: resume-ner version 1" in out, out
    assert not orphan_processes()  # the resumed sweep's start stopped them (and its own Ray ended with it)
    print(f"Ray processes left by the killed driver: {orphans}, after the next start: 0")

    after = child_runs(c, "resume-sweep")
    trial_ids = [r.data.tags["spanfirst.trial_id"] for r in after]
    assert len(after) == 4 and len(set(trial_ids)) == 4, trial_ids  # no duplicate child runs
    assert all(r.info.status in ("FINISHED", "KILLED") for r in after)
    by_trial = {r.data.tags["spanfirst.trial_id"]: r for r in after}
    for trial_id, run in finished.items():
        again = by_trial[trial_id]
        assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
        assert "spanfirst.restarts" not in again.data.tags  # never started again
        assert len(c.get_metric_history(run.info.run_id, "dev_score")) == 2  # 2 epochs, logged once
        assert result_lines(exp_dir)[trial_id] == lines_before[trial_id]
    for trial_id, run in before.items():  # trials cut short were restarted into their own run
        if run.info.status == "RUNNING" and trial_id not in kept:
            assert by_trial[trial_id].info.run_id == run.info.run_id
            assert by_trial[trial_id].data.tags.get("spanfirst.restarts") == "1"
    table = (exp_dir / "trials.csv").read_text(encoding="utf-8").strip().splitlines()
    assert len(table) == 1 + 4
