from pathlib import Path

import pytest

from spanfirst.config import ConfigError, RunConfig, apply_overrides, config_from_dict, load_config, save_config

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
    cfg = apply_overrides(RunConfig(), {"ner.top_k.k_max": 20, "train.lr_heads": "3e-4"})
    assert cfg.ner.top_k.k_max == 20 and cfg.train.lr_heads == pytest.approx(3e-4)
    with pytest.raises(ConfigError, match="ner.topk"):
        apply_overrides(RunConfig(), {"ner.topk.k_max": 20})
    # a field whose default is None is still a known path
    assert apply_overrides(RunConfig(), {"data.max_train_examples": 5}).data.max_train_examples == 5


def test_relative_input_paths_follow_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "c.yaml"
    path.write_text("data:\n  train: ../train.jsonl\n")
    monkeypatch.chdir(REPO)
    cfg = load_config(path, ["data.dev=dev.jsonl"])
    assert cfg.data.train == str((tmp_path / "train.jsonl").resolve())
    assert cfg.data.dev == str((REPO / "dev.jsonl").resolve())  # command-line paths: the working directory


def test_save_and_reload_round_trip(tmp_path):
    cfg = apply_overrides(RunConfig(), {"name": "x", "ner.nesting": "allow"})
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


def test_every_packaged_config_loads():
    configs = sorted((REPO / "spanfirst" / "configs").rglob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path)
