"""The sweep's first trial trains the base config's own values (``search.start_from_base``)."""
from __future__ import annotations

import pytest

from spanfirst.sweep.runner import first_points, searcher
from spanfirst.sweep.schedulers import build_scheduler
from spanfirst.sweep.space import load_space

BASE = "task: re\nre: {marker_style: typed_entity, pooling: mean}\ntrain: {lr_backbone: 1.0e-3, epochs: 3}\n"


def space(tmp_path, body: str, search: str = "{algorithm: optuna, num_samples: 6, seed: 3}",
          scheduler: str = "{grace_period: 1, max_epochs: 2}"):
    (tmp_path / "base.yaml").write_text(BASE, encoding="utf-8")
    path = tmp_path / "s.yaml"
    path.write_text(f"base: base.yaml\nscheduler: {scheduler}\nsearch: {search}\nspace:\n{body}", encoding="utf-8")
    return load_space(path)


def test_base_point_takes_the_base_values_inside_the_space(tmp_path):
    s = space(tmp_path, "  re.marker_style: {choice: [entity, typed_entity]}\n"
                        "  re.pooling: {choice: [cls, marker]}\n"            # base's mean: not a choice
                        "  re.focal_alpha: {choice: [null, 0.25]}\n"         # base's None is a choice
                        "  train.lr_backbone: {loguniform: [3.0e-4, 3.0e-3]}\n"
                        "  train.lr_heads: {loguniform: [1.0e-2, 1.0e-1]}\n"  # base's default lies below
                        "  model.dropout: {quniform: [0.0, 0.3, 0.05]}\n"
                        "  train.batch_size: {randint: [8, 17]}\n")
    assert s.base_point() == {"re.marker_style": "typed_entity", "re.focal_alpha": None,
                              "train.lr_backbone": 1.0e-3, "model.dropout": 0.1,
                              "train.batch_size": s.base.train.batch_size}
    # the first trial is a whole point: the key whose base value lies outside gets a drawn value
    (first,) = first_points(s)
    assert set(first) == set(s.dists) and {k: first[k] for k in s.base_point()} == s.base_point()
    assert 1.0e-2 <= first["train.lr_heads"] <= 1.0e-1 and first["re.pooling"] in ("cls", "marker")
    assert first_points(s) == [first]  # drawn with the search seed


def test_off_a_step_or_beside_a_grid_there_is_no_point(tmp_path):
    assert space(tmp_path, "  model.dropout: {quniform: [0.0, 0.3, 0.07]}\n").base_point() == {}
    grid = space(tmp_path, "  re.marker_style: {grid: [entity, typed_entity]}\n  train.lr_backbone: "
                           "{loguniform: [3.0e-4, 3.0e-3]}\n", search="{algorithm: random}")
    assert grid.base_point() == {}
    off = space(tmp_path, "  train.lr_backbone: {loguniform: [3.0e-4, 3.0e-3]}\n",
                search="{algorithm: optuna, start_from_base: false}")
    assert first_points(off) is None


@pytest.mark.parametrize("algorithm", ["optuna", "random"])
def test_the_first_suggestion_is_the_base_and_later_ones_are_searched(tmp_path, algorithm):
    """Through Ray Tune's own searchers (Optuna's TPE, and its random sampler as used under promotion ASHA)."""
    s = space(tmp_path, "  re.marker_style: {choice: [entity, typed_entity, typed_punct]}\n"
                        "  train.lr_backbone: {loguniform: [3.0e-4, 3.0e-3]}\n",
                        search=f"{{algorithm: {algorithm}, num_samples: 6, seed: 3}}",
                        scheduler="{grace_period: 1, max_epochs: 2, promotion: true}")
    alg = searcher(s, 2, build_scheduler(s))  # as the sweep builds it: bounded by the paused-aware limiter
    assert alg.set_search_properties("dev_score", "max", s.tune_space())
    first, second = alg.suggest("t1"), alg.suggest("t2")
    assert first == {"re.marker_style": "typed_entity", "train.lr_backbone": 1.0e-3}
    assert second != first and 3.0e-4 <= second["train.lr_backbone"] <= 3.0e-3


def test_random_search_without_a_scheduler_gets_the_point_too(tmp_path):
    s = space(tmp_path, "  train.lr_backbone: {loguniform: [3.0e-4, 3.0e-3]}\n", search="{algorithm: random}",
              scheduler="{type: none, max_epochs: 2}")
    assert searcher(s, 2)._points_to_evaluate == [{"train.lr_backbone": 1.0e-3}]  # Tune's BasicVariantGenerator


def test_a_base_value_outside_the_space_still_gives_optuna_a_whole_first_point(tmp_path):
    """Tune's OptunaSearch refuses partial points (a sweep whose base lay outside one key failed)."""
    s = space(tmp_path, "  re.marker_style: {choice: [entity, typed_entity]}\n"
                        "  train.lr_heads: {loguniform: [1.0e-2, 1.0e-1]}\n",
              scheduler="{grace_period: 1, max_epochs: 2, promotion: true}")
    alg = searcher(s, 2, build_scheduler(s))
    assert alg.set_search_properties("dev_score", "max", s.tune_space())
    first = alg.suggest("t1")
    assert first == first_points(s)[0] and first["re.marker_style"] == "typed_entity"
