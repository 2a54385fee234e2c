"""The sweep's feature cache: tokenised once per setting, counted; a tokenisation setting is its own entry."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from spanfirst.config import apply_overrides, load_config
from spanfirst.tasks import get_task
from spanfirst.train.features import build_task, feature_key, start_cache

CONFIGS = Path(__file__).resolve().parents[2] / "spanfirst" / "configs"


@pytest.fixture(scope="module")
def re_run(tmp_path_factory):
    cfg = load_config(CONFIGS / "quickstart_re.yaml", ["data.max_train_examples=60", "data.max_dev_examples=20",
                                                       f"train.output_dir={tmp_path_factory.mktemp('re')}"])
    return cfg, get_task("re").prepare(cfg)


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory):
    cfg = load_config(CONFIGS / "quickstart_ner.yaml", ["data.max_train_examples=60", "data.max_dev_examples=20",
                                                        f"train.output_dir={tmp_path_factory.mktemp('ner')}"])
    return cfg, get_task("ner").prepare(cfg)


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def test_training_knobs_share_a_key_tokenisation_settings_do_not(re_run, ner_run):
    cfg, prepared = re_run
    key = feature_key(cfg, prepared)
    same = {"train.lr_backbone": 1e-3, "train.lr_heads": 1e-2, "re.focal_gamma": 2.0, "model.dropout": 0.3,
            "train.seed": 7}
    assert feature_key(apply_overrides(cfg, same), prepared) == key
    for changed in ({"model.max_length": 64}, {"re.marker_style": "entity"}):
        assert feature_key(apply_overrides(cfg, changed), prepared) != key, changed

    cfg, prepared = ner_run
    key = feature_key(cfg, prepared)
    assert feature_key(apply_overrides(cfg, {"train.lr_heads": 1e-2, "ner.start_focal_gamma": 1.0}), prepared) == key
    for changed in ({"model.max_length": 64}, {"model.head": "global_pointer"}, {"data.long_train_texts": "truncate"}):
        assert feature_key(apply_overrides(cfg, changed), prepared) != key, changed


def test_cache_builds_once_per_setting_and_serves_the_same_features(re_run, local_ray):
    import ray

    cfg, prepared = re_run
    cache = start_cache("test-features-re")
    tasks = [build_task(apply_overrides(cfg, {"train.lr_backbone": lr}), prepared, cache) for lr in (1e-4, 3e-4, 1e-3)]
    other = build_task(apply_overrides(cfg, {"re.marker_style": "entity"}), prepared, cache)
    stats = ray.get(cache.stats.remote())
    assert sorted(stats["builds"].values()) == [1, 1] and sum(stats["hits"].values()) == 2
    fresh = get_task("re")(cfg, prepared)
    for served in tasks[1:]:
        assert [(f.input_ids, f.label) for f in served.train_features] == \
               [(f.input_ids, f.label) for f in fresh.train_features]
    assert [f.input_ids for f in other.train_features] != [f.input_ids for f in fresh.train_features]


def test_concurrent_trials_wait_for_the_one_build(ner_run, local_ray):
    import ray

    cfg, prepared = ner_run
    cache = start_cache("test-features-ner")
    built = []
    threads = [threading.Thread(target=lambda: built.append(build_task(cfg, prepared, cache))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = ray.get(cache.stats.remote())
    assert len(built) == 3 and list(stats["builds"].values()) == [1] and list(stats["hits"].values()) == [2]
    assert len({len(t.train_aligned) for t in built}) == 1


def test_a_failed_build_lets_the_next_trial_build(re_run, local_ray):
    import ray

    cfg, prepared = re_run
    cache = start_cache("test-features-fail")
    with pytest.raises(TypeError):  # same key (the examples are the sweep's), but no examples to featurize
        build_task(cfg, {**prepared, "train": None}, cache)
    build_task(cfg, prepared, cache)
    assert sum(ray.get(cache.stats.remote())["builds"].values()) == 2


def test_a_lost_cache_costs_a_build_not_the_trial(re_run, local_ray):
    """The cache actor dies with its node: trials build their own features and the sweep's stats are empty."""
    import ray

    from spanfirst.train.features import cache_stats

    cfg, prepared = re_run
    cache = start_cache("test-features-lost")
    assert cache_stats(cache) == {"builds": {}, "hits": {}}
    ray.kill(cache)
    task = build_task(cfg, prepared, cache)
    assert len(task.train_features) == len(build_task(cfg, prepared).train_features) > 0
    assert cache_stats(cache) == {}


def test_a_builder_that_stops_beating_is_given_up_on(re_run, local_ray):
    """A builder lost mid-build (it claimed the key, then never beat nor put) makes the next claimant
    build after ``stale_s``, not wait forever; a builder that beats keeps its claim."""
    import ray

    cfg, prepared = re_run
    cache = start_cache("test-features-stale", stale_s=1.0)
    key = feature_key(cfg, prepared)
    assert ray.get(cache.claim.remote(key)) == ("build", None)  # this "builder" is lost right away
    started = time.monotonic()
    task = build_task(cfg, prepared, cache)  # waits ~1 s, then builds itself
    assert time.monotonic() - started >= 1.0 and len(task.train_features) > 0
    assert ray.get(cache.stats.remote())["builds"] == {key: 2}

    other = "a-key-whose-builder-beats"
    assert ray.get(cache.claim.remote(other)) == ("build", None)
    waiting = cache.claim.remote(other)
    for _ in range(6):  # 3 s of beats, three times the stale limit
        time.sleep(0.5)
        cache.beat.remote(other)
    assert ray.wait([waiting], timeout=0)[0] == []  # still waiting for the live builder
    ray.get(cache.put.remote(other, "features"))
    assert ray.get(waiting) == ("hit", "features")
