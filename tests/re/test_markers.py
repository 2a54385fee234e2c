"""Entity markers round-trip to exact token positions; long sentences keep both entities."""

from __future__ import annotations

import pytest

from spanfirst.backbone import load_tokenizer
from spanfirst.data.types import RelationExample, Span
from spanfirst.re.features import collate, featurize
from spanfirst.re.markers import MARKER_STYLES, add_marker_tokens, mark, marker_vocab

TYPES = ["DAT", "LOC", "ORG", "PER"]


@pytest.fixture(scope="module")
def tokenizer(re_backbone):
    return load_tokenizer(str(re_backbone))


def tokenizer_with(tokenizer, style: str):
    tok = load_tokenizer(tokenizer.name_or_path)
    add_marker_tokens(tok, marker_vocab(style, TYPES))
    return tok


def squash(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("style", MARKER_STYLES)
def test_marked_text_keeps_entities_at_recorded_offsets(style, examples):
    vocab = marker_vocab(style, TYPES)
    for ex in examples:
        m = mark(ex, style, vocab)
        assert m.text[m.subject[0] : m.subject[1]] == ex.text[ex.subject.start : ex.subject.end]
        assert m.text[m.object[0] : m.object[1]] == ex.text[ex.object.start : ex.object.end]
    ex = examples[0]  # subject 삼양식품 (ORG), object 전중윤 (PER)
    m = mark(ex, style, vocab)
    expected_open = {"none": "삼", "entity": "[E1]", "typed_entity": "[E1-ORG]", "typed_punct": "@ * ORG *"}[style]
    assert m.text[m.subject_marker:].startswith(expected_open)
    assert m.text[m.object_marker:].startswith({"none": "전", "entity": "[E2]", "typed_entity": "[E2-PER]",
                                                "typed_punct": "# ^ PER ^"}[style])
    if style == "typed_punct":
        assert m.text.startswith("@ * ORG * 삼양식품 @은") and "# ^ PER ^ 전중윤 #" in m.text


def test_vocab_only_for_special_token_styles(make_example):
    assert marker_vocab("none", TYPES) == [] and marker_vocab("typed_punct", TYPES) == []
    assert marker_vocab("entity", TYPES) == ["[E1]", "[/E1]", "[E2]", "[/E2]"]
    typed = marker_vocab("typed_entity", TYPES)
    assert "[E1-ORG]" in typed and "[/E2-PER]" in typed and "[E1]" in typed  # untyped fallback kept
    unseen = make_example("가나다 라마바", "가나다", "NOH", "라마바", "PER", "no_relation")
    assert mark(unseen, "typed_entity", typed).text.startswith("[E1] 가나다 [/E1]")


@pytest.mark.parametrize("style", MARKER_STYLES)
def test_marker_token_positions_round_trip(tokenizer, style, examples, labels):
    tok = tokenizer_with(tokenizer, style)
    vocab = marker_vocab(style, TYPES)
    feats, report = featurize(tok, examples, style, vocab, {label: i for i, label in enumerate(labels)}, 128)
    assert report.windowed == 0
    for ex, f in zip(examples, feats):
        ids = f.input_ids
        for span, (s, e), marker in ((ex.subject, f.subject, f.subject_marker), (ex.object, f.object, f.object_marker)):
            word = ex.text[span.start : span.end]
            decoded = tok.decode(ids[s : e + 1])
            if style == "none":  # unmarked: the entity's tokens may carry an attached particle
                assert squash(word) in squash(decoded)
                assert marker == s
            else:
                assert squash(decoded) == squash(word)
                opening = mark(ex, style, vocab).text
                role_marker = tok.convert_ids_to_tokens(ids[marker])
                if style == "typed_punct":
                    assert role_marker.strip("▁") in ("@", "#")
                else:
                    assert role_marker in vocab and role_marker in opening
                    assert role_marker.startswith("[E1" if span == ex.subject else "[E2")
        assert f.label == labels.index(ex.label)


def test_long_sentence_window_keeps_both_entities(tokenizer, make_example):
    tok = tokenizer_with(tokenizer, "typed_entity")
    vocab = marker_vocab("typed_entity", TYPES)
    filler = "회의가 열렸다. " * 40
    text = filler + "삼양식품은 창업주 " + filler + "전중윤 회장의 뜻을 기렸다. " + filler
    ex = make_example(text, "삼양식품", "ORG", "전중윤", "PER", "org:founded_by")
    near = RelationExample(text, ex.subject, Span(ex.subject.end + 2, ex.subject.end + 5, "PER"), "no_relation")
    for max_len, case in ((64, ex), (64, near), (300, ex)):
        (f,), report = featurize(tok, [case], "typed_entity", vocab, {"no_relation": 0, "org:founded_by": 1}, max_len)
        assert len(f.input_ids) <= max_len and f.windowed and report.windowed == 1
        assert f.input_ids[0] == tok.cls_token_id and f.input_ids[-1] == tok.sep_token_id
        for span, (s, e), marker in ((case.subject, f.subject, f.subject_marker), (case.object, f.object, f.object_marker)):
            assert squash(tok.decode(f.input_ids[s : e + 1])) == squash(text[span.start : span.end])
            assert tok.convert_ids_to_tokens(f.input_ids[marker]).startswith("[E")
    (f,), report = featurize(tok, [ex], "typed_entity", vocab, {"no_relation": 0, "org:founded_by": 1}, 64)
    assert report.split == 1 and report.entity_cut == 0  # too far apart for one window: two pieces


def test_collate_shapes(tokenizer, examples):
    tok = tokenizer_with(tokenizer, "entity")
    feats, _ = featurize(tok, examples[:3], "entity", marker_vocab("entity", TYPES), None, 128)
    batch = collate(feats, tok.pad_token_id)
    T = max(len(f.input_ids) for f in feats)
    assert batch["input_ids"].shape == (3, T) and batch["subject_span"].shape == (3, 2)
    assert batch["subject_marker"].shape == (3,) and batch["labels"].tolist() == [-100] * 3
    assert batch["attention_mask"].sum(1).tolist() == [len(f.input_ids) for f in feats]
