"""The pretrained-encoder path the quality benchmark uses (all-MiniLM-L6-v2, the ``bench`` extra):
an uncased WordPiece tokenizer's offsets place English entities on tokens, and span-first learns
them through the same ``from_pretrained`` loading as any hub model. Skipped without the package."""

import pytest
import torch

from benchmarks.heads_wnut import MINILM_MISSING, minilm_path
from spanfirst.config import NerRunConfig, apply_overrides
from spanfirst.data.types import Example, Span
from spanfirst.ner.features import align_examples, collate
from spanfirst.ner.heads.registry import get_head
from spanfirst.ner.inference import decode_items
from spanfirst.ner.metrics import strict_f1

MINILM = minilm_path()
pytestmark = pytest.mark.skipif(MINILM is None, reason=MINILM_MISSING)

TEXTS = [
    ("Just watched Stranger Things season 3 with Millie Bobby Brown", [("Stranger Things", "creative-work"),
                                                                       ("Millie Bobby Brown", "person")]),
    ("@jess flying to New York on JetBlue tomorrow !!", [("New York", "location"), ("JetBlue", "corporation")]),
    ("my iPhone 12 died again , thanks Apple", [("iPhone 12", "product"), ("Apple", "corporation")]),
]
TYPES = ["corporation", "creative-work", "location", "person", "product"]


def examples() -> list[Example]:
    return [Example(t, [Span(t.index(s), t.index(s) + len(s), ty) for s, ty in ents]) for t, ents in TEXTS]


@pytest.mark.parametrize("decision", ["softmax", "multilabel"])
def test_span_first_learns_english_entities_on_minilm(decision):
    from spanfirst.backbone import load_encoder, load_tokenizer

    torch.manual_seed(0)
    tok = load_tokenizer(str(MINILM))
    items, report = align_examples(tok, examples(), TYPES, 64)
    assert report.aligned == report.entities == 6  # the uncased tokenizer's offsets hit every boundary
    cfg = apply_overrides(NerRunConfig(), {"model.backbone": str(MINILM), "model.dropout": 0.0,
                                           "ner.type_decision": decision, "ner.score_threshold": 0.3,
                                           "ner.length_bins": [[n, n] for n in range(1, 6)],
                                           "ner.representative_lengths": [1, 2, 3, 4, 5]})
    model = get_head("span_first").build(load_encoder(str(MINILM)), cfg, {"types": TYPES})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = collate(items, tok.pad_token_id)
    model.train()
    for _ in range(60):
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    preds = decode_items(model.eval(), items, range(len(items)), TYPES, tok.pad_token_id, 8, model.cfg.length_bins)
    gold = [[(s.start, s.end, s.type) for s in ex.entities] for ex in examples()]
    got = [[(a, b, t) for a, b, t, _ in p.char_spans] for p in sorted(preds, key=lambda p: p.index)]
    assert strict_f1(gold, got)["f1"] == 1.0
