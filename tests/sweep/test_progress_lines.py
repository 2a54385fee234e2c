"""The sweep driver's per-trial lines (spanfirst.sweep.progress)."""

from types import SimpleNamespace

from spanfirst.sweep.progress import TrialLines, sweep_eta, trial_line
from spanfirst.sweep.schedulers import TrialEpochBudget


def test_trial_line_format() -> None:
    r = {"epoch": 3, "dev_score": 0.5, "best_dev_score": 0.625}
    assert trial_line("t_00001", r, "finished all epochs") == (
        "trial t_00001: finished all epochs after 3 epoch(s), dev_score 0.5000, best_dev_score 0.6250")
    assert trial_line("t_2", {}, "error", eta_s=65) == "trial t_2: error after 0 epoch(s), sweep ETA 1m05s"
    assert sweep_eta(30, 0.25) == 90 and sweep_eta(30, None) is None


def test_callback_hooks_name_reasons_and_eta() -> None:
    clock, lines = [0.0], []
    sched = SimpleNamespace(stopped={"b"})
    budget = TrialEpochBudget(10)
    cb = TrialLines(sched, budget, None, max_epochs=4, clock=lambda: clock[0], echo=lines.append)
    for tid, n in (("a", 4), ("b", 2), ("c", 1)):
        for i in range(1, n + 1):
            budget(tid, {"epoch": i})
    clock[0] = 35.0  # 7 of 10 epochs used
    trial = lambda tid, n: SimpleNamespace(trial_id=tid, last_result={"epoch": n, "dev_score": 0.5})
    cb.on_trial_complete(1, [], trial("a", 4))
    cb.on_trial_complete(1, [], trial("b", 2))
    cb.on_trial_complete(1, [], trial("c", 1))
    cb.on_trial_error(1, [], trial("d", 0))
    assert lines == [
        "trial a: finished all epochs after 4 epoch(s), dev_score 0.5000, sweep ETA 15s",
        "trial b: stopped by the scheduler after 2 epoch(s), dev_score 0.5000, sweep ETA 15s",
        "trial c: early-stopped after 1 epoch(s), dev_score 0.5000, sweep ETA 15s",
        "trial d: error after 0 epoch(s), dev_score 0.5000, sweep ETA 15s",
    ]
    for i in range(1, 4):
        budget("e", {"epoch": i})
    cb.on_trial_complete(1, [], trial("e", 3))
    assert lines[-1] == "trial e: stopped by the budget after 3 epoch(s), dev_score 0.5000, sweep ETA 0s"


def test_no_scheduler_no_budget() -> None:
    lines = []
    cb = TrialLines(None, None, None, max_epochs=None, echo=lines.append)
    cb.on_trial_complete(0, [], SimpleNamespace(trial_id="x", last_result=None))
    assert lines == ["trial x: finished all epochs after 0 epoch(s)"]


def test_a_recovered_trial_says_so() -> None:
    lines = []
    cb = TrialLines(None, None, None, max_epochs=4, echo=lines.append)
    trial = SimpleNamespace(trial_id="t", last_result={"epoch": 2}, max_failures=2,
                            run_metadata=SimpleNamespace(num_failures=1))
    cb.on_trial_recover(1, [], trial)
    assert lines == ["trial t: lost after 2 epoch(s), starting again from its latest checkpoint (failure 1 of at most 3)"]
