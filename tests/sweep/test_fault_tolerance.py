"""Trials survive a lost process: a real sweep whose trial processes are killed with SIGKILL
mid-epoch (the scenario of ``benchmarks.faults``). One trial is killed once and resumes from
its latest checkpoint (not from epoch 0) in the same MLflow run; another is killed once more than
``trial.max_failures`` allows and ends ``failed`` with the error in MLflow; the sweep goes on,
finishes every trial and registers the best."""

from __future__ import annotations

import pytest

from benchmarks.faults import measure_kills, mlflow_steps, recovery


@pytest.mark.slow
def test_lost_trial_processes_resume_from_their_checkpoint_or_fail_after_their_retries(tmp_path):
    from mlflow import MlflowClient

    got = measure_kills(tmp_path)
    resumed, doomed, kills = got["resumed"], got["doomed"], got["kills"]
    assert got["returncode"] == 0, got["out"][-6000:]
    assert resumed and doomed and len(kills[resumed]) == 1 and len(kills[doomed]) == 2, kills
    assert "registered model: faults-ner version 1 (alias champion)" in got["out"], got["out"][-3000:]
    assert "starting again from its latest checkpoint" in got["out"]

    runs = mlflow_steps(got["uri"], "faults")
    assert len(runs) == 3  # one run per trial: a restart continues its trial's run
    assert runs[resumed] == ("FINISHED", [1, 2, 3, 4], "1")  # no gap, no epoch twice, one restart
    # resumed, not restarted: the next report after the kill is the epoch that was in progress. The
    # killed process's last report is read after the kill: it may have reported again between the
    # poll that saw an epoch and the kill
    (pid, _seen, at), = kills[resumed]
    epoch_at_kill = max(int(r["epoch"]) for r in got["reports"][resumed] if int(r["trial_pid"]) == pid)
    back = recovery(got["reports"][resumed], pid, at)
    assert back is not None and back["epoch"] == epoch_at_kill + 1, back
    trial_dir = next(got["storage"].glob("*/trials")) / resumed  # bounded: best model and latest state
    assert 1 <= len([p for p in trial_dir.iterdir() if p.name.startswith("checkpoint_epoch_")]) <= 2

    status, steps, restarts = runs[doomed]
    assert status == "FAILED" and restarts == "1" and steps == list(range(1, len(steps) + 1)) and steps
    c = MlflowClient(got["uri"])
    run = next(r for r in c.search_runs([c.get_experiment_by_name("faults").experiment_id])
               if r.data.tags.get("spanfirst.trial_id") == doomed)
    assert run.data.tags["spanfirst.status"] == "failed" and "died" in run.data.tags["spanfirst.error"]

    (other,) = set(runs) - {resumed, doomed}
    assert runs[other] == ("FINISHED", [1, 2, 3, 4], "0")
    table = next(got["storage"].glob("*/trials.csv")).read_text(encoding="utf-8").splitlines()
    assert len(table) == 1 + 3 and sum(",failed," in line for line in table) == 1
