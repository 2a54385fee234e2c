"""Trials survive a lost process: a real sweep whose trial processes are killed with SIGKILL
mid-epoch. One trial is killed once and resumes from its latest checkpoint (not from epoch 0) in
the same MLflow run; another is killed once more than ``trial.max_failures`` allows and ends
``failed`` with the error in MLflow; the sweep goes on, finishes every trial and registers the best."""

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
scheduler: {{type: none, max_epochs: 4}}
search: {{algorithm: random, num_samples: 3, max_concurrent: 2, seed: 11}}
trial: {{workers: 1, cpus_per_worker: 1, max_failures: 1}}
mlflow: {{experiment: faults, registered_model: faults-ner}}
overrides: {{data.max_train_examples: 400, data.max_dev_examples: 60, train.early_stopping_patience: 0}}
space:
  train.lr_heads: {{loguniform: [1.0e-3, 3.0e-3]}}
"""


def reports(storage: Path) -> dict[str, list[dict]]:
    """Every epoch report Tune recorded so far (its result.json per trial), by trial id."""
    out: dict[str, list[dict]] = {}
    for path in storage.glob("*/run_trial_*/result.json"):
        try:
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, ValueError):  # being written
            continue
        for row in rows:
            if "trial_pid" in row:
                out.setdefault(row["trial_id"], []).append(row)
    return out


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.slow
def test_lost_trial_processes_resume_from_their_checkpoint_or_fail_after_their_retries(tmp_path, sweep_tools):
    from mlflow import MlflowClient

    space = sweep_tools.write_space(tmp_path / "faults.yaml", SPACE.format(base=sweep_tools.configs / "quickstart_ner.yaml"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = tmp_path / "runs"
    log = (tmp_path / "sweep.log").open("w")
    proc = subprocess.Popen(sweep_tools.cmd(space, "--tracking-uri", uri, "--storage", str(storage)), cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "RAY_DEDUP_LOGS": "1"})
    resumed = doomed = None  # trial ids: killed once (within its retries) / killed until its retries are spent
    killed: dict[str, list[tuple[int, int]]] = {}  # trial id -> (pid, epoch it had reported) per kill
    deadline = time.time() + 400
    try:
        while proc.poll() is None:
            assert time.time() < deadline, (tmp_path / "sweep.log").read_text()[-4000:]
            time.sleep(0.2)
            for trial_id, rows in reports(storage).items():
                last = rows[-1]
                if last["epoch"] >= 4 or (trial_id not in (resumed, doomed) and resumed and doomed):
                    continue
                done = killed.setdefault(trial_id, [])
                if resumed is None and not done:
                    resumed = trial_id
                elif doomed is None and not done and trial_id != resumed:
                    doomed = trial_id
                # each kill hits a process that has reported an epoch and is training the next one
                wanted = 1 if trial_id == resumed else 2
                if len(done) < wanted and all(pid != last["trial_pid"] for pid, _ in done):
                    kill(int(last["trial_pid"]))
                    done.append((int(last["trial_pid"]), int(last["epoch"])))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    out = (tmp_path / "sweep.log").read_text()
    assert proc.returncode == 0, out[-6000:]
    assert resumed and doomed and len(killed[resumed]) == 1 and len(killed[doomed]) == 2, killed
    assert "registered model: faults-ner version 1 (alias champion)" in out, out[-3000:]

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("faults")
    runs = c.search_runs([exp.experiment_id], max_results=50)
    children = {r.data.tags["spanfirst.trial_id"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert len(children) == 3  # one run per trial: a restart continues its trial's run

    def steps(run) -> list[int]:
        return [m.step for m in sorted(c.get_metric_history(run.info.run_id, "dev_score"), key=lambda m: m.step)]

    run = children[resumed]
    assert run.info.status == "FINISHED" and run.data.tags["spanfirst.status"] == "completed"
    assert run.data.tags["spanfirst.restarts"] == "1"
    assert steps(run) == [1, 2, 3, 4]  # no gap, no epoch twice
    # resumed, not restarted: the killed epoch was trained again in the new process, the ones before it were not
    rows = reports(storage)[resumed]
    (pid, epoch_at_kill), = killed[resumed]
    after = [r["epoch"] for r in rows if r["trial_pid"] != pid]
    assert after and after[0] == epoch_at_kill + 1, (epoch_at_kill, [(r["trial_pid"], r["epoch"]) for r in rows])
    # bounded checkpoints: the best model and the latest resume point at most
    trial_dir = next(storage.glob("*/trials")) / resumed
    assert 1 <= len([p for p in trial_dir.iterdir() if p.name.startswith("checkpoint_epoch_")]) <= 2

    run = children[doomed]
    assert run.info.status == "FAILED" and run.data.tags["spanfirst.status"] == "failed"
    assert run.data.tags["spanfirst.restarts"] == "1"
    assert "died" in run.data.tags["spanfirst.error"].lower() or "actor" in run.data.tags["spanfirst.error"].lower()
    assert steps(run) == list(range(1, len(steps(run)) + 1)) and steps(run)

    (other,) = set(children) - {resumed, doomed}
    assert children[other].info.status == "FINISHED" and steps(children[other]) == [1, 2, 3, 4]
    assert "spanfirst.restarts" not in children[other].data.tags
    table = next(storage.glob("*/trials.csv")).read_text(encoding="utf-8").splitlines()
    assert len(table) == 1 + 3 and sum(",failed," in line for line in table) == 1
