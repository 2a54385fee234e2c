"""The search-space loader: each distribution maps 1:1 to Ray Tune; every error names file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from ray.tune.search import sample

from spanfirst.config import ConfigError
from spanfirst.sweep.space import find_space_files, load_space, to_tune

BASE = """\
task: ner
name: space-test
data: {train: train.jsonl, dev: dev.jsonl}
model: {backbone: tiny}
train: {epochs: 2}
"""


RE_BASE = """\
task: re
name: space-test-re
data: {train: train.jsonl, dev: dev.jsonl}
model: {backbone: tiny}
"""


def write_space(tmp_path: Path, body: str, name: str = "space.yaml", base: str = BASE) -> Path:
    (tmp_path / "base.yaml").write_text(base, encoding="utf-8")
    path = tmp_path / name
    path.write_text("base: base.yaml\n" + body, encoding="utf-8")
    return path


def test_every_distribution_maps_to_its_ray_tune_domain(tmp_path):
    path = write_space(tmp_path, """\
scheduler: {grace_period: 1, reduction_factor: 2, max_epochs: 3}
trial: {workers: 2, cpus_per_worker: 1}
space:
  ner.start_focal_gamma: {choice: [0.0, 1.0, 2.0]}
  ner.type_label_smoothing: {uniform: [0.0, 0.2]}
  train.lr_heads: {loguniform: [1e-5, 1e-3]}
  ner.start_focal_alpha: {quniform: [0.1, 0.9, 0.1]}
  ner.top_k.beta: {randint: [0, 4]}
  model.dropout: {grid: [0.0, 0.1]}
  ner.loss_weights: {choice: [[1.0, 1.0, 1.0], [1.0, 1.0, 2.0]]}
""")
    space = load_space(path)
    tune_space = space.tune_space()
    assert isinstance(tune_space["ner.start_focal_gamma"], sample.Categorical)
    assert tune_space["ner.start_focal_gamma"].categories == [0.0, 1.0, 2.0]
    uni = tune_space["ner.type_label_smoothing"]
    assert isinstance(uni, sample.Float) and isinstance(uni.sampler, sample.Float._Uniform)
    assert (uni.lower, uni.upper) == (0.0, 0.2)
    log = tune_space["train.lr_heads"]  # "1e-5" is a string in YAML: coerced
    assert isinstance(log.sampler, sample.Float._LogUniform) and (log.lower, log.upper) == (1e-5, 1e-3)
    q = tune_space["ner.start_focal_alpha"]
    assert isinstance(q.sampler, sample.Quantized) and q.sampler.q == pytest.approx(0.1)
    ri = tune_space["ner.top_k.beta"]
    assert isinstance(ri, sample.Integer) and (ri.lower, ri.upper) == (0, 4)
    assert tune_space["model.dropout"] == {"grid_search": [0.0, 0.1]}
    assert tune_space["ner.loss_weights"].categories == [[1.0, 1.0, 1.0], [1.0, 1.0, 2.0]]
    # the sweep's own settings reach every trial's base config
    assert space.base.train.epochs == 3 and space.base.train.num_workers == 2
    assert space.experiment == "spanfirst-space" and space.registered_model == "spanfirst-ner"


def test_overrides_and_command_line_updates_apply_to_the_base(tmp_path):
    path = write_space(tmp_path, """\
overrides: {data.max_train_examples: 50, train.batch_size: 4}
space:
  train.lr_heads: {loguniform: [1.0e-4, 1.0e-2]}
""")
    space = load_space(path, {"search": {"num_samples": 3}, "trial": {"workers": 2}})
    assert space.base.data.max_train_examples == 50 and space.base.train.batch_size == 4
    assert space.spec.search.num_samples == 3 and space.base.train.num_workers == 2


@pytest.mark.parametrize(("body", "needle"), [
    ("space:\n  train.lr_headz: {uniform: [0.1, 0.2]}\n", "space.train.lr_headz: unknown config key"),
    ("space:\n  ner.top_k.kmin: {choice: [1, 2]}\n", "space.ner.top_k.kmin: unknown config key"),
    ("space:\n  model.dropout: {normal: [0.0, 0.1]}\n", "space.model.dropout: unknown distribution 'normal'"),
    ("space:\n  model.dropout: {uniform: [0.3, 0.1]}\n", "space.model.dropout: lower bound 0.3 must be below"),
    ("space:\n  model.dropout: {uniform: [0.1, 0.1]}\n", "space.model.dropout: lower bound"),
    ("space:\n  train.lr_heads: {loguniform: [0.0, 0.1]}\n", "space.train.lr_heads: loguniform needs a lower bound > 0"),
    ("space:\n  train.lr_heads: {loguniform: [-1.0, 0.1]}\n", "space.train.lr_heads: loguniform needs a lower bound > 0"),
    ("space:\n  model.dropout: {quniform: [0.0, 0.3, 0]}\n", "space.model.dropout: quniform step q must be > 0"),
    ("space:\n  model.dropout: {quniform: [0.0, 0.3]}\n", "space.model.dropout: 'quniform' takes a list of 3"),
    ("space:\n  ner.top_k.beta: {randint: [0, 2.5]}\n", "space.ner.top_k.beta: 'randint' bound 2.5 is not an integer"),
    ("space:\n  ner.top_k.beta: {randint: [3, 3]}\n", "space.ner.top_k.beta: lower bound 3 must be below"),
    ("space:\n  model.dropout: {uniform: [a, 0.1]}\n", "space.model.dropout: 'uniform' bound 'a' is not a number"),
    ("space:\n  model.dropout: {choice: []}\n", "space.model.dropout: 'choice' takes a non-empty list"),
    ("space:\n  model.dropout: {grid: 0.1}\n", "space.model.dropout: 'grid' takes a non-empty list"),
    ("space:\n  model.dropout: {uniform: [0, 1], choice: [0.1]}\n", "space.model.dropout: give exactly one"),
    # values the config itself rejects (dropout < 1, focal alpha <= 1, a Literal, list length)
    ("space:\n  model.dropout: {uniform: [0.0, 1.5]}\n", "space.model.dropout: value 1.5 is rejected"),
    ("space:\n  train.scheduler: {choice: [linear, cosinus]}\n", "space.train.scheduler: value 'cosinus' is rejected"),
    ("space:\n  ner.length_class_weights: {choice: [[1.0, 2.0]]}\n", "space.ner.length_class_weights: value [1.0, 2.0]"),
    ("space:\n  train.epochs: {choice: [1, 2]}\n", "space.train.epochs: set by the sweep itself"),
    ("space:\n  model.dropout: {uniform: [0, 0.1]}\nsearch: {algoritm: random}\n", "unknown key 'search.algoritm'"),
    ("space:\n  model.dropout: {uniform: [0, 0.1]}\nsearch: {algorithm: bayes}\n", "key 'search.algorithm'"),
    ("space:\n  model.dropout: {uniform: [0, 0.1]}\nscheduler: {grace_period: 5, max_epochs: 2}\n", "grace_period (5) exceeds"),
    ("space:\n  model.dropout: {uniform: [0, 0.1]}\noverrides: {train.epoch: 2}\n", "overrides.train.epoch: unknown config key"),
    ("space:\n  model.dropout: {uniform: [0, 0.1]}\noverrides: {train.batch_size: 0}\n", "train.batch_size"),
    ("space: {}\n", "key 'space'"),
])
def test_errors_name_the_file_and_the_key(tmp_path, body, needle):
    path = write_space(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_space(path)
    message = str(info.value)
    assert str(path) in message, message
    assert needle in message, message


@pytest.mark.parametrize(("body", "needle"), [
    ("space:\n  ner.top_k.k_min: {choice: [2, 4]}\n",
     "space.ner.top_k.k_min: unknown config key 'ner.top_k.k_min' (a key of task 'ner'; this config's task is 're')"),
    ("space:\n  model.head: {choice: [span_first]}\n", "space.model.head: unknown config key 'model.head' (the NER head"),
    ("space:\n  re.pooling: {choice: [cls]}\noverrides: {ner.nesting: allow}\n", "overrides.ner.nesting: unknown config key"),
])
def test_an_re_space_rejects_ner_keys_by_name(tmp_path, body, needle):
    path = write_space(tmp_path, body, base=RE_BASE)
    with pytest.raises(ConfigError) as info:
        load_space(path)
    message = str(info.value)
    assert str(path) in message and needle in message, message


def test_an_re_space_with_an_ner_key_fails_before_ray_starts(tmp_path, monkeypatch):
    from spanfirst.sweep import runner

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray started before the space was validated")

    monkeypatch.setattr(runner, "init_ray", no_ray)
    path = write_space(tmp_path, "space:\n  ner.top_k.k_min: {choice: [2, 4]}\n", base=RE_BASE)
    with pytest.raises(ConfigError, match=r"space\.yaml: space\.ner\.top_k\.k_min: unknown config key"):
        runner.run_sweep(path, runner.SweepOptions(storage=str(tmp_path / "sweeps")))


def test_an_re_space_takes_re_keys(tmp_path):
    space = load_space(write_space(tmp_path, "space:\n  re.pooling: {choice: [cls, mean]}\n", base=RE_BASE))
    assert space.base.task == "re" and space.registered_model == "spanfirst-re"


def test_missing_base_and_missing_file_are_named(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("base: nowhere.yaml\nspace:\n  model.dropout: {uniform: [0, 0.1]}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"space\.yaml: key 'base': .*nowhere\.yaml: config file not found"):
        load_space(path)
    with pytest.raises(ConfigError, match="search-space file not found"):
        load_space(tmp_path / "absent.yaml")


def test_to_tune_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown distribution"):
        to_tune("normal", [0, 1])


def test_find_space_files_is_recursive(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for p in ("x.yaml", "a/y.yml", "a/b/z.yaml", "a/b/notes.txt"):
        (tmp_path / p).write_text("{}", encoding="utf-8")
    assert [p.relative_to(tmp_path).as_posix() for p in find_space_files(tmp_path)] == ["a/b/z.yaml", "a/y.yml", "x.yaml"]
