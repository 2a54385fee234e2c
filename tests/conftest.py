"""Shared fixtures: the data beside the repo, a tiny offline backbone, an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# One intra-op thread: on a 2-core machine shared with Ray workers, OpenMP's spinning threads
# make a tiny model's step ~80x slower when oversubscribed (measured: 2.4 ms vs 194 ms).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE = REPO / "spanfirst" / "resources" / "sample"

KOREAN_TEXTS = [
    "가수 김흥국이 왕십리에서 콘서트를 열었다.",
    "경찰은 또 성매매 알선 자금을 관리한 박씨의 딸(32)과 김모(33)씨 등 16명을 입건했다.",
    "서울 강남구에서 오늘 오후 3시에 회의가 열린다.",
    "삼성전자는 2024년 1월 새 제품을 발표했다.",
    "John Smith visited Paris with Acme Corp in May 2023.",
]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared data folder is not beside the repository ({SHARED_DATA.name} missing)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A tiny XLM-R (tokenizer trained on a few sentences) saved with save_pretrained."""
    from spanfirst.backbone import build_tiny_backbone
    from spanfirst.config import TinyBackboneConfig

    texts = KOREAN_TEXTS * 3
    sample = SAMPLE / "klue_ner_train.jsonl"
    if sample.is_file():
        from spanfirst.data.readers import read_ner

        texts += [e.text for e in read_ner(str(sample))[:300]]
    cfg = TinyBackboneConfig(vocab_size=600, hidden_size=32, num_heads=2, intermediate_size=64)
    return build_tiny_backbone(texts, tmp_path_factory.mktemp("tiny-backbone"), cfg)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests never write to the user's cache; the tiny backbones they build are shared per session."""
    monkeypatch.setenv("SPANFIRST_CACHE", str(tmp_path_factory.getbasetemp() / "spanfirst-cache"))


@pytest.fixture(autouse=True, scope="module")
def _module_leaves_no_trace():
    """Each test module leaves the process as it found it: no Ray still connected (an in-process
    training run starts one) and the environment unchanged (``mlflow.set_*_uri`` export
    ``MLFLOW_*_URI``, which every later subprocess - a sweep, a server - would inherit)."""
    saved = dict(os.environ)
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    os.environ.update(saved)
