"""Char span <-> token span through offset mappings: specials, leading spaces, truncation."""

import pytest
from transformers import PreTrainedTokenizerFast

from spanfirst.backbone import load_tokenizer
from spanfirst.data.alignment import align_entities, char_to_token_span, encode, token_to_char_span
from spanfirst.data.types import Span


@pytest.fixture(scope="module")
def bpe_with_spaces():
    """A byte-level BPE whose offsets keep the leading space ("Ġword" covers ' word')."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>", "<pad>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["John Smith visited Paris in May.", "Smith and John went to Paris."] * 20, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


def test_leading_space_offsets_are_trimmed(bpe_with_spaces):
    text = "John Smith visited Paris in May."
    raw = bpe_with_spaces(text, return_offsets_mapping=True)["offset_mapping"]
    assert any(text[a] == " " for a, b in raw if b > a), "the fixture must produce space-carrying offsets"
    enc = encode(bpe_with_spaces, [text], 64)[0]
    for (a, b), m in zip(enc.offsets, enc.text_mask):
        if m:
            assert not text[a].isspace() and not text[b - 1].isspace()
    span = char_to_token_span(enc, text.index("Paris"), text.index("Paris") + 5)
    assert span is not None
    assert text[slice(*token_to_char_span(enc, *span))] == "Paris"
    assert not enc.text_mask[0] and not enc.text_mask[-1]  # <s> and </s> are never text


def test_korean_entities_round_trip(tiny_backbone):
    tok = load_tokenizer(str(tiny_backbone))
    text = "가수 김흥국이 왕십리에서 콘서트를 열었다."
    enc = encode(tok, [text], 64)[0]
    start = text.index("왕십리")
    span = char_to_token_span(enc, start, start + 3)
    got = text[slice(*token_to_char_span(enc, *span))]
    assert "왕십리" in got  # the token span covers the entity (more only if a token crosses its boundary)


def test_truncated_entities_are_counted_not_dropped_silently(tiny_backbone):
    tok = load_tokenizer(str(tiny_backbone))
    text = "김흥국 " * 40 + "왕십리"
    ents = [Span(0, 3, "PS"), Span(len(text) - 3, len(text), "LC")]
    enc = encode(tok, [text], 16)[0]
    gold, report = align_entities(enc, ents, {"PS": 1, "LC": 2})
    assert report.entities == 2 and report.aligned == 1 and report.truncated == 1
    assert report.examples_truncated == 1
    assert [t for _, _, t in gold] == [1]


def test_boundary_inside_a_token_is_reported(bpe_with_spaces):
    text = "John Smith visited Paris in May."
    enc = encode(bpe_with_spaces, [text], 64)[0]
    # "mit" lies inside the token(s) of "Smith": aligned to the covering tokens, counted as a mismatch
    start = text.index("mit")
    gold, report = align_entities(enc, [Span(start, start + 3, "X")], {"X": 1})
    assert report.aligned == 1 and report.boundary_mismatch == 1
    a, b = token_to_char_span(enc, gold[0][0], gold[0][1])
    assert a <= start and b >= start + 3


def test_shared_offsets_pick_the_piece_that_carries_the_text():
    from spanfirst.data.alignment import Encoded

    # a bare "▁" piece and the next piece can report the same offsets; the span must start on the latter
    enc = Encoded("a 16", [0, 5, 6, 7, 8, 2], [(0, 0), (0, 1), (2, 3), (2, 3), (3, 4), (0, 0)],
                  [False, True, True, True, True, False])
    assert char_to_token_span(enc, 2, 4) == (3, 4)
