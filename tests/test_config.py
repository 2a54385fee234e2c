from pathlib import Path

import pytest

from spanfirst.config import (ConfigError, NerRunConfig, ReRunConfig, RunConfig, apply_overrides, config_from_dict,
                              default_config, load_config, read_yaml_mapping, save_config)

REPO = Path(__file__).resolve().parents[1]


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown key 'train.warmup_ratoi'"):
        config_from_dict({"train": {"warmup_ratoi": 0.1}}, "x.yaml")


def test_numbers_are_coerced_from_yaml_strings(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr_backbone: 1e-5\n  epochs: '3'\n")
    cfg = load_config(path)
    assert cfg.train.lr_backbone == pytest.approx(1e-5)
    assert cfg.train.epochs == 3


def test_bad_value_names_file_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("ner:\n  top_k:\n    k_min: 20\n    k_max: 4\n")
    with pytest.raises(ConfigError, match=r"c.yaml: key 'ner.top_k'.*k_min"):
        load_config(path)


def test_length_bins_must_be_contiguous():
    with pytest.raises(ConfigError, match="length_bins"):
        config_from_dict({"ner": {"length_bins": [[1, 1], [3, 4]], "representative_lengths": [1, 3]}})
    with pytest.raises(ConfigError, match="representative"):
        config_from_dict({"ner": {"representative_lengths": [1, 2, 5, 6]}})


def test_overrides_by_dotted_path_and_unknown_rejected(tmp_path):
    cfg = apply_overrides(NerRunConfig(), {"ner.top_k.k_max": 20, "train.lr_heads": "3e-4"})
    assert cfg.ner.top_k.k_max == 20 and cfg.train.lr_heads == pytest.approx(3e-4)
    with pytest.raises(ConfigError, match="ner.topk"):
        apply_overrides(NerRunConfig(), {"ner.topk.k_max": 20})
    # a field whose default is None is still a known path
    assert apply_overrides(NerRunConfig(), {"data.max_train_examples": 5}).data.max_train_examples == 5


def test_relative_input_paths_follow_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "c.yaml"
    path.write_text("data:\n  train: ../train.jsonl\n")
    monkeypatch.chdir(REPO)
    cfg = load_config(path, ["data.dev=dev.jsonl"])
    assert cfg.data.train == str((tmp_path / "train.jsonl").resolve())
    assert cfg.data.dev == str((REPO / "dev.jsonl").resolve())  # command-line paths: the working directory


def test_save_and_reload_round_trip(tmp_path):
    cfg = apply_overrides(NerRunConfig(), {"name": "x", "ner.nesting": "allow"})
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


def test_every_packaged_config_loads():
    configs = sorted((REPO / "spanfirst" / "configs").rglob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path)


# --------------------------------------------------------------------------------------------
# One config class per task


@pytest.mark.parametrize("task", ["ner", "re"])
def test_default_configs_round_trip_with_only_their_own_sections(tmp_path, task):
    cfg = default_config(task)
    assert type(cfg) is {"ner": NerRunConfig, "re": ReRunConfig}[task] and cfg.task == task
    path = tmp_path / "c.yaml"
    save_config(cfg, path)
    saved = read_yaml_mapping(path)
    assert saved["task"] == task
    assert ("ner" in saved, "re" in saved) == (task == "ner", task == "re")
    assert ("head" in saved["model"]) == (task == "ner")
    assert load_config(path) == cfg


def test_the_run_config_union_picks_the_class_by_task():
    assert isinstance(config_from_dict({}), NerRunConfig)  # no task: NER, as before
    ner = config_from_dict({"task": "ner", "ner": {"nesting": "allow"}})
    re_ = config_from_dict({"task": "re", "re": {"pooling": "mean"}})
    assert isinstance(ner, NerRunConfig) and ner.ner.nesting == "allow"
    assert isinstance(re_, ReRunConfig) and re_.re.pooling == "mean"
    assert isinstance(re_, RunConfig) and isinstance(ner, RunConfig)
    with pytest.raises(ConfigError, match=r"x.yaml: key 'task': unknown task 'ner2' \(known: ner, re\)"):
        config_from_dict({"task": "ner2"}, "x.yaml")


def test_a_key_of_the_other_task_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: re\nner:\n  top_k:\n    k_min: 2\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'ner' \(.*a section of task 'ner'; this config's task is 're'\)"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"x.yaml: unknown key 'model.head' \(the NER head, a key of task 'ner'"):
        config_from_dict({"task": "re", "model": {"head": "span_first"}}, "x.yaml")
    with pytest.raises(ConfigError, match=r"x.yaml: unknown key 're' \(.*a section of task 're'; this config's task is 'ner'"):
        config_from_dict({"re": {"pooling": "mean"}}, "x.yaml")
    # errors inside a task's own section keep their plain key (no task tag in front)
    with pytest.raises(ConfigError, match=r"^x.yaml: unknown key 're.poolng'$"):
        config_from_dict({"task": "re", "re": {"poolng": "mean"}}, "x.yaml")


def test_overrides_of_the_other_task_are_named():
    with pytest.raises(ConfigError, match=r"--set: unknown key 're.pooling' \(a key of task 're'; this config's task is 'ner'\)"):
        apply_overrides(NerRunConfig(), {"re.pooling": "mean"}, "--set")
    with pytest.raises(ConfigError, match=r"unknown key 'ner.top_k.k_min' \(a key of task 'ner'"):
        apply_overrides(ReRunConfig(), {"ner.top_k.k_min": 2})
    with pytest.raises(ConfigError, match=r"unknown key 'model.head'"):
        apply_overrides(ReRunConfig(), {"model.head": "bio"})


def test_an_unknown_head_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"key 'model.head': .*unknown NER head 'crf' \(known: .*span_first"):
        apply_overrides(NerRunConfig(), {"model.head": "crf"})


def test_overriding_task_switches_the_config_class():
    re_ = apply_overrides(NerRunConfig(), {"task": "re", "re.pooling": "mean", "train.epochs": 3})
    assert isinstance(re_, ReRunConfig) and re_.re.pooling == "mean" and re_.train.epochs == 3
    assert "ner" not in re_.to_dict() and "head" not in re_.to_dict()["model"]
    back = apply_overrides(apply_overrides(re_, {"re.pooling": "marker"}), {"task": "ner", "model.head": "bio"})
    assert isinstance(back, NerRunConfig) and back.model.head == "bio" and back.train.epochs == 3
    assert back.ner == NerRunConfig().ner
    # a setting of the old task that is not its default is not dropped silently
    with pytest.raises(ConfigError, match=r"unknown key 'ner' \("):
        apply_overrides(apply_overrides(NerRunConfig(), {"ner.nesting": "allow"}), {"task": "re"})
    with pytest.raises(ConfigError, match=r"unknown key 'model.head' \("):
        apply_overrides(apply_overrides(NerRunConfig(), {"model.head": "bio"}), {"task": "re"})
    with pytest.raises(ConfigError, match=r"unknown key 'ner.nesting'"):
        apply_overrides(NerRunConfig(), {"task": "re", "ner.nesting": "allow"})
    with pytest.raises(ConfigError, match=r"key 'task': unknown task 'rel'"):
        apply_overrides(NerRunConfig(), {"task": "rel"})


def test_read_yaml_mapping_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"absent.yaml: search-space file not found"):
        read_yaml_mapping(tmp_path / "absent.yaml", "search-space file")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match=r"list.yaml: the top level must be a mapping"):
        read_yaml_mapping(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        read_yaml_mapping(tmp_path / "bad.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml_mapping(tmp_path / "empty.yaml") == {}
