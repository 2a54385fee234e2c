"""The sweep-efficiency benchmark's own maths and options (no sweeps run here)."""
import pytest

from benchmarks.sweep_efficiency import BASELINE, Setup, _cli_options, curve, first_reaching


def test_curve_keeps_the_best_so_far_and_counts_trial_epochs():
    events = [(105.0, 0.2), (108.0, 0.5), (112.0, 0.4), (120.0, 0.6)]
    assert curve(events, started=100.0) == [(5.0, 1, 0.2), (8.0, 2, 0.5), (12.0, 3, 0.5), (20.0, 4, 0.6)]


def test_first_reaching_gives_seconds_and_trial_epochs_or_none():
    points = [(5.0, 1, 0.2), (8.0, 2, 0.5), (12.0, 3, 0.5), (20.0, 4, 0.6)]
    assert first_reaching(points, 0.5) == (8.0, 2)
    assert first_reaching(points, 0.61) is None


def test_report_names_the_options_that_redo_a_run():
    assert _cli_options(Setup()) == ""
    assert _cli_options(Setup(task="ner", seeds=(0,))) == ""
    setup = Setup(seeds=(0, 1, 2, 3), strategies=(BASELINE, "tpe-promotion"), reduction_factor=3, grace_period=2,
                  budget=60)
    assert _cli_options(setup) == (" --seeds 0 1 2 3 --strategies tpe-promotion --reduction-factor 3 --grace-period 2"
                                   " --budget 60")


def test_unknown_strategy_is_refused_by_name():
    with pytest.raises(ValueError, match="no-such"):
        Setup(strategies=("no-such",)).chosen()
