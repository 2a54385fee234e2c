"""Sweep pieces that need no Ray: tracking URI, params, seeds, statuses, concurrency, the champion
rule on a real (SQLite) registry, and the pyfunc model logged from a checkpoint."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from spanfirst import tracking
from spanfirst.sweep.runner import SweepError, concurrency, searcher, startup_trials
from spanfirst.sweep.schedulers import epochs_per_trial
from spanfirst.sweep.space import load_space
from spanfirst.sweep.summary import TrialSummary, classify, plot_progress, set_startups, write_table
from spanfirst.sweep.runs import trial_index
from spanfirst.sweep.trial import trial_seed

REPO = Path(__file__).resolve().parents[2]


def test_tracking_uri_precedence_and_local_paths_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking.artifact_root(tracking.resolve_tracking_uri()) == (tmp_path / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.resolve_tracking_uri() == "http://127.0.0.1:5999"
    assert tracking.resolve_tracking_uri(None, "sqlite:///x/t.db") == f"sqlite:///{tmp_path / 'x' / 't.db'}"
    assert tracking.resolve_tracking_uri("http://h:1", "sqlite:///x.db") == "http://h:1"
    assert tracking.resolve_tracking_uri("store") == (tmp_path / "store").as_uri()
    assert tracking.artifact_root("http://h:1") is None


def test_params_are_named_as_config_paths():
    flat = tracking.flatten({"train": {"lr_heads": 1e-4, "seed": 3}, "ner": {"top_k": {"k_min": 4}, "w": None},
                             "data": {"labels": []}})
    assert flat == {"train.lr_heads": 1e-4, "train.seed": 3, "ner.top_k.k_min": 4, "ner.w": None, "data.labels": []}
    assert tracking.param_value([1.0, 2.0]) == "[1.0, 2.0]" and tracking.param_value("x") == "x"


def test_trial_seeds_depend_on_sweep_seed_and_trial_number_only():
    assert trial_index("a1b2c_00003") == 3 and trial_index("odd") == 0
    seeds = [trial_seed(0, i) for i in range(50)]
    assert len(set(seeds)) == 50 and seeds == [trial_seed(0, i) for i in range(50)]
    assert trial_seed(1, 0) != trial_seed(0, 0)
    assert all(0 <= s < 2**31 for s in seeds)


def rows(*scores: float) -> list[dict]:
    return [{"epoch": i + 1, "dev_score": s} for i, s in enumerate(scores)]


@pytest.mark.parametrize(("history", "error", "patience", "by_asha", "budget", "status"), [
    (rows(0.1, 0.2, 0.3, 0.4), False, 2, False, False, "completed"),  # all max_epochs
    (rows(0.3, 0.2, 0.1), False, 2, False, False, "completed"),  # its own early stopping
    (rows(0.1), False, 2, True, False, "stopped_by_asha"),
    (rows(0.1, 0.2), False, 0, False, False, "stopped_by_asha"),  # no record (resumed): derived
    (rows(0.1, 0.2), False, 0, False, True, "stopped_by_time_budget"),
    (rows(0.1, 0.2), False, 0, True, True, "stopped_by_asha"),
    (rows(0.1), True, 2, False, False, "failed"),
    ([], False, 2, False, False, "not_started"),
])
def test_final_status(history, error, patience, by_asha, budget, status):
    assert classify(history, error, 4, patience, by_asha, budget) == status


def test_a_trials_score_is_its_best_epoch_and_checkpoint_the_last_kept(tmp_path):
    hist = [{"epoch": 1, "dev_score": 0.2, "checkpoint_path": "/c1", "trial_elapsed_seconds": 10.0,
             "trial_overhead_seconds": 8.0, "epoch_train_seconds": 1.0},
            {"epoch": 2, "dev_score": 0.5, "checkpoint_path": "/c2", "trial_elapsed_seconds": 12.0},
            {"epoch": 3, "dev_score": 0.4, "trial_elapsed_seconds": 14.0, "epoch_train_seconds": 1.5}]
    t = TrialSummary("x_00001", "completed", {"train.lr_heads": 0.01}, hist)
    assert t.score == 0.5 and t.best["epoch"] == 2 and t.checkpoint == "/c2" and t.epochs == 3
    assert t.overhead == 8.0 and t.elapsed == 14.0
    empty = TrialSummary("x_00002", "not_started", {}, [])
    assert empty.score == -math.inf and empty.checkpoint is None
    stopped = TrialSummary("x_00003", "stopped_by_asha", {"train.lr_heads": 0.1}, hist[:1])
    table = write_table([empty, t, stopped], tmp_path / "trials.csv", {"x_00001": "run1"})
    lines = table.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("trial_id,status,score,best_epoch") and len(lines) == 4
    assert lines[1].startswith("x_00001,completed,0.5000,2,3,,8.0000,14.0000,2.5000,run1,0.01,/c2")  # no start-up measured
    png = plot_progress([t, stopped, empty], tmp_path / "progress.png", "dev_score")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_trials_startup_runs_from_its_slot_being_free_to_its_first_step():
    def trial(tid: str, pid: int, born: float, first_step: float, last_report: float) -> TrialSummary:
        rows = [{"epoch": 1, "first_step_at": first_step, "trial_pid": pid, "trial_process_started_at": born,
                 "reported_at": first_step + 3}, {"epoch": 2, "reported_at": last_report}]
        return TrialSummary(tid, "completed", {}, rows)

    fit = 1000.0
    trials = [trial("a", 1, 990.0, 1007.0, 1020.0),   # first in a process Ray started before fit
              trial("b", 2, 1001.0, 1009.0, 1030.0),  # first in a process born after fit
              trial("c", 1, 990.0, 1020.5, 1040.0),   # reuses a's process: free since a's last report
              trial("d", 2, 1001.0, 1031.0, 1050.0)]
    old = TrialSummary("e", "completed", {}, [{"epoch": 1, "first_step_at": 900.0, "trial_pid": 3}])  # resumed
    set_startups(trials + [old, TrialSummary("f", "not_started", {})], fit)
    assert [t.startup for t in trials] == [7.0, 8.0, 0.5, 1.0] and old.startup is None


def test_a_promoted_trials_second_stretch_holds_its_process_slot():
    """Promotion-based ASHA: a trial pauses at a rung and later trains on, here in the same process;
    the trial after it waits for that second stretch, and the one before does not start at 0."""
    def row(pid: int, first: float, reported: float) -> dict:
        return {"epoch": 1, "first_step_at": first, "trial_pid": pid, "trial_process_started_at": 990.0,
                "reported_at": reported}

    a = TrialSummary("a", "completed", {}, [row(1, 1007.0, 1020.0), row(1, 1032.0, 1045.0)])  # paused at 1020
    b = TrialSummary("b", "stopped_by_asha", {}, [row(1, 1021.0, 1030.0)])
    c = TrialSummary("c", "completed", {}, [row(1, 1046.5, 1060.0)])
    set_startups([a, b, c], 1000.0)
    assert [a.startup, b.startup, c.startup] == [7.0, 1.0, 1.5]


def test_concurrency_follows_the_cluster_and_the_trial_request(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("task: ner\ndata: {train: t.jsonl}\n", encoding="utf-8")

    def space(trial: str, search: str = "num_samples: 8") -> object:
        path = tmp_path / "s.yaml"
        path.write_text(f"base: base.yaml\ntrial: {{{trial}}}\nsearch: {{{search}}}\n"
                        "space:\n  model.dropout: {uniform: [0.0, 0.2]}\n", encoding="utf-8")
        return load_space(path)

    assert concurrency(space("workers: 1"), {"CPU": 2.0}) == 2
    assert concurrency(space("workers: 2"), {"CPU": 2.0}) == 1
    assert concurrency(space("workers: 1, cpus_per_worker: 4"), {"CPU": 16.0}) == 4
    assert concurrency(space("workers: 1", "num_samples: 8, max_concurrent: 1"), {"CPU": 2.0}) == 1
    assert concurrency(space("workers: 1", "num_samples: 1"), {"CPU": 2.0}) == 1
    # fractional GPUs: two trials per GPU, bounded by the GPUs as well as the CPUs
    assert concurrency(space("workers: 1, gpus_per_worker: 0.5"), {"CPU": 16.0, "GPU": 2.0}) == 4
    assert concurrency(space("workers: 1, gpus_per_worker: 0.5"), {"CPU": 3.0, "GPU": 2.0}) == 3
    with pytest.raises(SweepError, match="one trial needs 2 CPU"):
        concurrency(space("workers: 2"), {"CPU": 1.0})


@pytest.mark.slow
def test_champion_alias_moves_only_to_a_better_model(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = tracking.client(uri)
    c.create_registered_model("m")
    src = tmp_path / "src"
    src.mkdir()

    def version() -> str:
        return c.create_model_version("m", str(src)).version

    v1 = version()
    assert tracking.promote_if_better(uri, "m", v1, "dev_score", 0.5)[0]
    v2 = version()
    promoted, message = tracking.promote_if_better(uri, "m", v2, "dev_score", 0.4)
    assert not promoted and "does not beat champion version 1" in message
    v3 = version()
    assert not tracking.promote_if_better(uri, "m", v3, "dev_score", 0.5)[0]  # a tie does not demote
    v4 = version()
    assert tracking.promote_if_better(uri, "m", v4, "dev_score", 0.6)[0]
    assert c.get_model_version_by_alias("m", "champion").version == v4
    # a champion scored on another metric cannot be compared: it keeps the alias
    v5 = version()
    promoted, message = tracking.promote_if_better(uri, "m", v5, "dev_micro_f1", 0.99)
    assert not promoted and "keeps the alias" in message
    assert c.get_model_version_by_alias("m", "champion").version == v4


@pytest.fixture
def ner_checkpoint(tiny_backbone, tmp_path) -> Path:
    from spanfirst.backbone import load_encoder, load_tokenizer
    from spanfirst.config import NerRunConfig, apply_overrides
    from spanfirst.ner.heads.span_first import SpanFirstModel
    from spanfirst.checkpoint import save as save_checkpoint

    cfg = apply_overrides(NerRunConfig(), {"model.backbone": str(tiny_backbone), "ner.score_threshold": 0.0,
                                           "ner.length_bins": [[1, 1], [2, 2], [3, 4], [5, 6]],
                                           "ner.representative_lengths": [1, 2, 3, 6]})
    types = ["LC", "PS"]
    model = SpanFirstModel(load_encoder(str(tiny_backbone)), len(types), cfg.ner, 0.0)
    return save_checkpoint(model, load_tokenizer(str(tiny_backbone)), cfg, {"types": types}, tmp_path / "ckpt",
                           metrics={"epoch": 1, "report": {}})


def test_confusion_matrices_come_from_the_task_and_the_checkpoint_labels(ner_checkpoint):
    from spanfirst import checkpoint
    from spanfirst.tasks import get_task

    report = {"length_bin_confusion": [[1, 0, 0, 0]] * 4, "type_confusion": [[0, 1, 0]] * 3}
    saved = checkpoint.read(ner_checkpoint)
    mats = get_task(saved.task).confusion_matrices(saved.cfg, saved.labels, report)
    assert mats["type_confusion"][1] == ["O", "LC", "PS"]
    assert mats["length_bin_confusion"][1] == ["1", "2", "3-4", "5-6"]


@pytest.mark.slow
def test_checkpoint_logged_as_a_pyfunc_model_from_code(ner_checkpoint, tmp_path, monkeypatch):
    import mlflow
    import pandas as pd

    from spanfirst.serving.log_model import log_checkpoint_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # a registry URI left in the environment (mlflow.set_registry_uri exports one) must not
    # send the model to another registry than its run's
    stale = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", stale)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    exp = tracking.ensure_experiment(uri, "unit")
    with tracking.use_uri(uri):
        with mlflow.start_run(experiment_id=exp):
            info, version = log_checkpoint_model(ner_checkpoint, "ner", "unit-ner")
        assert str(version.version) == "1"
        local = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "dl")))
        mlmodel = (local / "MLmodel").read_text(encoding="utf-8")
        assert "model_code_path" in mlmodel and not list(local.rglob("*.pkl"))  # code, not a pickle
        assert list(local.rglob("heads.safetensors")) and list(local.rglob("model.safetensors"))
        assert json.loads((local / "serving_input_example.json").read_text())["dataframe_split"]["columns"] == ["text"]
        model = mlflow.pyfunc.load_model("models:/unit-ner/1")
        assert [c.name for c in model.metadata.get_input_schema().inputs] == ["text"]
        out = model.predict(pd.DataFrame({"text": ["가수 김흥국이 왕십리에서 콘서트를 열었다.", "서울"]}))
        assert list(out.columns) == ["entities"] and len(out) == 2
        assert all({"start", "end", "type", "score", "text"} <= set(e) for ents in out["entities"] for e in ents)
        with pytest.raises(ValueError, match="not a 're' one"):
            log_checkpoint_model(ner_checkpoint, "re")
    assert tracking.client(uri).get_registered_model("unit-ner").name == "unit-ner"
    assert not (tmp_path / "elsewhere.db").exists()
    # the block's URIs are gone again: the caller's environment is as it was
    assert os.environ["MLFLOW_REGISTRY_URI"] == stale and "MLFLOW_TRACKING_URI" not in os.environ


@pytest.fixture
def mlflow_uris_kept(monkeypatch):
    """MLflow's process-wide URIs and their environment variables back as they were after the test."""
    from spanfirst import compat

    saved = compat.mlflow_set_uris()
    for key in tracking.URI_ENV:  # monkeypatch puts the caller's values back
        monkeypatch.delenv(key, raising=False)
    compat.mlflow_restore_uris(None, None)
    yield
    compat.mlflow_restore_uris(*saved)


def test_use_uri_restores_the_uris_and_the_environment(tmp_path, monkeypatch, mlflow_uris_kept):
    import mlflow

    from spanfirst import compat

    inner = f"sqlite:///{tmp_path / 'inner.db'}"
    # never set, no environment: afterwards again "not set" (not pinned to MLflow's default)
    with tracking.use_uri(inner):
        assert mlflow.get_tracking_uri() == inner and mlflow.get_registry_uri() == inner
        assert os.environ["MLFLOW_TRACKING_URI"] == inner and os.environ["MLFLOW_REGISTRY_URI"] == inner
    assert compat.mlflow_set_uris() == (None, None)
    assert not {"MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"} & set(os.environ)
    # only the environment says where: it still does afterwards, and nothing is pinned
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5998")
    with tracking.use_uri(inner):
        assert mlflow.get_tracking_uri() == inner
    assert compat.mlflow_set_uris() == (None, None)
    assert mlflow.get_tracking_uri() == "http://127.0.0.1:5998" and "MLFLOW_REGISTRY_URI" not in os.environ
    # set by mlflow.set_*_uri (which also exports them), then the environment changed: all kept
    mlflow.set_tracking_uri("sqlite:///a.db")
    mlflow.set_registry_uri("sqlite:///b.db")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:///c.db")
    with pytest.raises(RuntimeError, match="inside"):
        with tracking.use_uri(inner):
            raise RuntimeError("inside")
    assert compat.mlflow_set_uris() == ("sqlite:///a.db", "sqlite:///b.db")
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///a.db" and os.environ["MLFLOW_REGISTRY_URI"] == "sqlite:///c.db"


def test_searcher_is_seeded_and_bounded_and_explains_what_it_cannot_do(tmp_path):
    import importlib.util

    from ray.tune.search.basic_variant import BasicVariantGenerator

    (tmp_path / "base.yaml").write_text("task: ner\ndata: {train: t.jsonl}\n", encoding="utf-8")

    def space(algorithm: str, dist: str = "{uniform: [0.0, 0.2]}") -> object:
        path = tmp_path / "s.yaml"
        path.write_text(f"base: base.yaml\nsearch: {{algorithm: {algorithm}, seed: 7}}\n"
                        f"space:\n  model.dropout: {dist}\n", encoding="utf-8")
        return load_space(path)

    gen = searcher(space("random"), 2)
    assert isinstance(gen, BasicVariantGenerator) and gen.max_concurrent == 2
    with pytest.raises(SweepError, match="'grid' \\(model.dropout\\) needs search.algorithm: random"):
        searcher(space("optuna", "{grid: [0.0, 0.1]}"), 2)
    if importlib.util.find_spec("hyperopt") is None:
        with pytest.raises(SweepError, match="needs the 'hyperopt' package"):
            searcher(space("hyperopt"), 2)


def test_tpe_starts_modelling_after_a_quarter_of_the_trials_the_budget_is_expected_to_start(tmp_path):
    (tmp_path / "base.yaml").write_text("task: ner\ndata: {train: t.jsonl}\n", encoding="utf-8")

    def space(scheduler: str, search: str) -> object:
        path = tmp_path / "s.yaml"
        path.write_text(f"base: base.yaml\nscheduler: {scheduler}\nsearch: {search}\n"
                        "space:\n  model.dropout: {uniform: [0.0, 0.2]}\n", encoding="utf-8")
        return load_space(path)

    def specs(scheduler: str, search: str) -> tuple[object, object]:
        spec = space(scheduler, search).spec
        return spec.search, spec.scheduler

    asha = "{grace_period: 1, reduction_factor: 2, max_epochs: 6}"
    # rungs 1, 2, 4, then 6: all train 1 epoch, half a 2nd, a quarter the 3rd-4th, an eighth the 5th-6th
    assert epochs_per_trial(space(asha, "{}").spec.scheduler) == pytest.approx(1 + 1 / 2 + 2 / 4 + 2 / 8)
    fifo = "{type: none, max_epochs: 6}"
    assert epochs_per_trial(space(fifo, "{}").spec.scheduler) == 6.0
    # Hyperband's brackets start at 1, 2 and 4 epochs (2.25, 3.5, 5 epochs a trial), weighted e**rungs as Ray does
    hyperband = space("{type: hyperband, grace_period: 1, reduction_factor: 2, max_epochs: 6}", "{}").spec.scheduler
    w = [1, math.exp(-1), math.exp(-2)]
    assert epochs_per_trial(hyperband) == pytest.approx((2.25 * w[0] + 3.5 * w[1] + 5 * w[2]) / sum(w))
    # 30 trial-epochs start ~13 trials under ASHA (not 30, nor 5): TPE models after 3
    assert startup_trials(*specs(asha, "{num_samples: 64, max_trial_epochs: 30}")) == 3
    assert startup_trials(*specs(fifo, "{num_samples: 64, max_trial_epochs: 30}")) == 2  # 5 trials: the floor
    assert startup_trials(*specs(asha, "{num_samples: 200}")) == 10  # Optuna's own default is the ceiling
    assert startup_trials(*specs(asha, "{num_samples: 12}")) == 3

    sampler = searcher(space(asha, "{num_samples: 12, seed: 7, start_from_base: false}"), 2)._sampler
    assert sampler._n_startup_trials == 3 and sampler._multivariate and sampler._constant_liar
    # the base config's trial is not one of the random ones: Optuna counts it, so one more
    assert searcher(space(asha, "{num_samples: 12, seed: 7}"), 2)._sampler._n_startup_trials == 4
    assert not searcher(space(asha, "{num_samples: 12, startup_trials: 5}"), 1)._sampler._constant_liar


@pytest.mark.slow
def test_experiments_are_model_development_and_trial_runs_keep_their_own_times(tmp_path):
    from spanfirst.sweep.runs import SweepRuns

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = tracking.client(uri)
    exp_id = tracking.ensure_experiment(uri, "e")
    assert c.get_experiment(exp_id).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    mine = c.create_experiment("mine", tags={tracking.EXPERIMENT_KIND_TAG: "finetuning"})
    untagged = c.create_experiment("old")
    assert tracking.ensure_experiment(uri, "mine") == mine and tracking.ensure_experiment(uri, "old") == untagged
    assert c.get_experiment(mine).tags[tracking.EXPERIMENT_KIND_TAG] == "finetuning"  # the user's kept
    assert c.get_experiment(untagged).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"

    parent = c.create_run(exp_id, run_name="sweep").info.run_id
    runs = SweepRuns(uri, exp_id, parent)
    t0 = 1_700_000_000_000
    run_id, logged = runs.start_trial("t_00000", "trial-000", {}, start_time_ms=t0)
    assert logged == set() and c.get_run(run_id).info.start_time == t0
    for epoch, ts in ((1, t0 + 5_000), (2, t0 + 9_000)):
        c.log_metric(run_id, "epoch", epoch, timestamp=ts, step=epoch)
    runs.complete_trial("t_00000")
    assert c.get_run(run_id).info.end_time == t0 + 9_000 and c.get_run(run_id).info.status == "FINISHED"
    runs.fail_trial("t_00001", "trial-001", {}, {}, "boom", start_time_ms=t0 + 1)
    failed = runs.find_trial("t_00001").info
    assert failed.start_time == t0 + 1 and failed.status == "FAILED" and failed.end_time > t0 + 9_000  # none: now


@pytest.mark.slow
def test_a_sweep_whose_driver_is_gone_is_closed_by_the_next_one(tmp_path):
    import socket
    import subprocess
    import sys

    import psutil

    from spanfirst.sweep.runs import DRIVER_TAG, FOLDER_TAG, LOST_TAG, close_lost_sweeps, driver_id

    gone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    gone_id = f"{socket.gethostname()}:{gone.pid}:{int(psutil.Process(gone.pid).create_time())}"
    gone.wait()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = tracking.client(uri)
    exp = tracking.ensure_experiment(uri, "e")

    def sweep(driver: str) -> tuple[str, str]:
        parent = c.create_run(exp, tags={"spanfirst.kind": "sweep", DRIVER_TAG: driver, FOLDER_TAG: "runs/s-1"})
        child = c.create_run(exp, tags={"mlflow.parentRunId": parent.info.run_id})
        return parent.info.run_id, child.info.run_id

    lost, alive, elsewhere = sweep(gone_id), sweep(driver_id()), sweep("another-host:1:1")
    assert close_lost_sweeps(uri, exp) == [lost[0]]
    assert [c.get_run(r).info.status for r in lost] == ["KILLED", "KILLED"]
    assert "--resume runs/s-1" in c.get_run(lost[0]).data.tags[LOST_TAG]
    assert c.get_run(lost[1]).data.tags["spanfirst.status"] == "interrupted"
    for run_id in (*alive, *elsewhere):
        assert c.get_run(run_id).info.status == "RUNNING"


def test_the_store_is_opened_in_the_background_without_writing_anything(tmp_path):
    """The sweep gets MLflow ready while Ray starts: an existing store is opened and left as it was,
    a SQLite file not there yet is not created, and a URI MLflow cannot open is left for the first
    real call to say."""
    import sqlite3

    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    tracking.open_store_in_background(uri, "sweep-experiment").join()
    assert not db.exists()  # a sweep refused before it starts leaves no store behind
    tracking.client(uri).search_experiments()  # the store now exists
    before = db.read_bytes()
    tracking.open_store_in_background(uri, "sweep-experiment").join()
    with sqlite3.connect(db) as con:
        names = {r[0] for r in con.execute("SELECT name FROM experiments")}
    assert "sweep-experiment" not in names and db.read_bytes() == before
    tracking.open_store_in_background("nosuchscheme://x", "e").join()  # no exception escapes the thread
    with pytest.raises(Exception, match="nosuchscheme"):
        tracking.ensure_experiment("nosuchscheme://x", "e")
