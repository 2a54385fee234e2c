"""RE test fixtures: hand-made examples, the shared data folder, a tiny tokenizer/encoder built
once per module. (Tests run with --import-mode=importlib, so helpers are fixtures, not imports.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from spanfirst.data.types import RelationExample, Span

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "spanfirst" / "resources" / "sample"
SHARED_RE = REPO.parent / "shared" / "data" / "klue-re"


def example(text: str, subj: str, s_type: str, obj: str, o_type: str, label: str, ex_id: str = "") -> RelationExample:
    """An example from entity words (their first occurrence in ``text``)."""
    s, o = text.index(subj), text.index(obj)
    return RelationExample(text, Span(s, s + len(subj), s_type), Span(o, o + len(obj), o_type), label, ex_id)


EXAMPLES = [
    example("삼양식품은 창업주 전중윤 회장의 뜻을 기렸다.", "삼양식품", "ORG", "전중윤", "PER", "org:founded_by", "a"),
    example("인디고뮤직엔 스윙스, 저스디스, 키드밀리가 속해있다.", "저스디스", "PER", "인디고뮤직", "ORG", "per:employee_of", "b"),
    example("2008년 3월 FC 루빈 카잔으로 이적하였다.", "FC 루빈 카잔", "ORG", "2008", "DAT", "no_relation", "c"),
    example("John O'Neil joined Acme Corp in May 2023.", "Acme Corp", "ORG", "John O'Neil", "PER", "org:top_members/employees", "d"),
    example("서울 강남구에서 김철수 대표가 회의를 열었다.", "김철수", "PER", "서울", "LOC", "per:place_of_residence", "e"),
    example("김철수는 서울대학교를 졸업했다.", "김철수", "PER", "서울대학교", "ORG", "per:schools_attended", "f"),
]
LABELS = ["no_relation", "org:founded_by", "org:top_members/employees", "per:employee_of",
          "per:place_of_residence", "per:schools_attended"]


def tokenizer_texts() -> list[str]:
    """Raw and marked texts, so marker punctuation and type names are pieces of the tiny vocab."""
    from spanfirst.re.markers import mark

    texts = [ex.text for ex in EXAMPLES]
    texts += [mark(ex, "typed_punct").text for ex in EXAMPLES]
    return texts * 4


@pytest.fixture
def make_example() -> Callable[..., RelationExample]:
    return example


@pytest.fixture(scope="session")
def examples() -> list[RelationExample]:
    return list(EXAMPLES)


@pytest.fixture(scope="session")
def labels() -> list[str]:
    return list(LABELS)


@pytest.fixture
def shared_re() -> Path:
    if not SHARED_RE.is_dir():
        pytest.skip(f"the shared KLUE-RE folder is not beside the repository ({SHARED_RE.parent.parent.name}/data/klue-re missing)")
    return SHARED_RE


@pytest.fixture
def sample_dir() -> Path:
    if not (SAMPLE / "klue_re_train.jsonl").is_file():
        pytest.skip("the bundled KLUE-RE sample is missing (run pipelines/make_re_sample.py)")
    return SAMPLE


@pytest.fixture(scope="module")
def re_backbone(tmp_path_factory) -> Path:
    """A tiny XLM-R (tokenizer + random encoder) saved with save_pretrained, once per module."""
    from spanfirst.backbone import build_tiny_backbone
    from spanfirst.config import TinyBackboneConfig

    cfg = TinyBackboneConfig(vocab_size=400, hidden_size=32, intermediate_size=64)
    return build_tiny_backbone(tokenizer_texts(), tmp_path_factory.mktemp("re-tiny"), cfg)
