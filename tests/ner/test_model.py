"""The span-first model on the tiny backbone: losses, decoding, overfit, save -> reload -> predict."""

import pytest
import torch

from spanfirst.backbone import load_encoder, load_tokenizer
from spanfirst.config import NerConfig, NerRunConfig, apply_overrides
from spanfirst.data.types import Example, Span
from spanfirst.ner.features import align_examples, collate
from spanfirst.ner.heads.common import top_per_group
from spanfirst.ner.heads.span_first import SpanFirstModel, span_mean
from spanfirst.ner.predictor import NerPredictor
from spanfirst.ner.inference import decode_items
from spanfirst.ner.metrics import strict_f1
from spanfirst.checkpoint import save as save_checkpoint

TEXTS = [
    ("가수 김흥국이 왕십리에서 콘서트를 열었다.", [("김흥국", "PS"), ("왕십리", "LC")]),
    ("삼성전자는 2024년 1월 새 제품을 발표했다.", [("삼성전자", "OG"), ("2024년 1월", "DT")]),
    ("서울 강남구에서 오늘 오후 3시에 회의가 열린다.", [("서울 강남구", "LC"), ("오후 3시", "TI")]),
    ("John Smith visited Paris with Acme Corp in May 2023.", [("John Smith", "PS"), ("Paris", "LC"), ("Acme Corp", "OG")]),
]
TYPES = ["DT", "LC", "OG", "PS", "TI"]
DESIGN_BINS = [(1, 1), (2, 2), (3, 4), (5, 6)]  # the design note's bins


def examples() -> list[Example]:
    out = []
    for text, ents in TEXTS:
        out.append(Example(text, [Span(text.index(s), text.index(s) + len(s), t) for s, t in ents]))
    return out


def test_span_mean_matches_slices():
    h = torch.randn(2, 6, 3)
    b, s, e = torch.tensor([0, 1, 1]), torch.tensor([1, 0, 5]), torch.tensor([3, 0, 5])
    got = span_mean(h, b, s, e)
    want = torch.stack([h[0, 1:4].mean(0), h[1, 0:1].mean(0), h[1, 5:6].mean(0)])
    assert torch.allclose(got, want, atol=1e-6)


def test_top_per_group_keeps_k_best_in_each_group():
    group = torch.tensor([0, 0, 0, 1, 1, 2])
    score = torch.tensor([0.1, 0.9, 0.5, 0.3, 0.2, 0.0])
    assert top_per_group(group, score, 2, 3).tolist() == [False, True, True, True, True, True]
    assert top_per_group(group, score, 1, 3).tolist() == [False, True, False, True, False, True]


@pytest.fixture()
def model_and_items(tiny_backbone):
    torch.manual_seed(0)
    tok = load_tokenizer(str(tiny_backbone))
    items, report = align_examples(tok, examples(), TYPES, 64)
    assert report.aligned == report.entities == 9
    cfg = NerConfig(score_threshold=0.3, hard_negatives=2, length_bins=DESIGN_BINS, representative_lengths=[1, 2, 3, 6])
    model = SpanFirstModel(load_encoder(str(tiny_backbone)), len(TYPES), cfg, dropout=0.0)
    return model, tok, items


def test_forward_loss_is_finite_and_reaches_every_head(model_and_items):
    model, tok, items = model_and_items
    batch = collate(items, tok.pad_token_id)
    out = model(**batch)
    assert out.start_logits.shape == batch["input_ids"].shape
    assert out.length_logits.shape == (*batch["input_ids"].shape, 4)
    assert all(torch.isfinite(x) for x in (out.loss, out.start_loss, out.length_loss, out.type_loss))
    out.loss.backward()
    for head in model.heads():
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("options", [{}, {"type_decision": "softmax"},
                                     {"type_decision": "softmax", "soft_start_labels": True, "partial_credit": True}])
def test_overfits_a_handful_of_sentences(model_and_items, options):
    model, tok, items = model_and_items
    # one length bin per token length, so every gold span is reachable: F1 = 1.0 is possible
    longest = max(e - s + 1 for it in items for s, e, _ in it.gold)
    bins = [(n, n) for n in range(1, longest + 1)]
    cfg = NerConfig(length_bins=bins, representative_lengths=list(range(1, longest + 1)), score_threshold=0.3, **options)
    model = SpanFirstModel(model.encoder, len(TYPES), cfg, dropout=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = collate(items, tok.pad_token_id)
    model.train()
    for _ in range(250):
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    preds = decode_items(model, items, range(len(items)), TYPES, tok.pad_token_id, 8, model.cfg.length_bins)
    gold = [[(s.start, s.end, s.type) for s in ex.entities] for ex in examples()]
    got = [[(a, b, t) for a, b, t, _ in p.char_spans] for p in sorted(preds, key=lambda p: p.index)]
    assert strict_f1(gold, got)["f1"] == 1.0


def test_checkpoint_reloads_and_predicts_the_same(model_and_items, tmp_path):
    model, tok, items = model_and_items
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = collate(items, tok.pad_token_id)
    for _ in range(60):
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    model.eval()
    cfg = apply_overrides(NerRunConfig(), {"model.dropout": 0.0, "ner.score_threshold": 0.0,
                                           "ner.length_bins": [list(b) for b in DESIGN_BINS],
                                           "ner.representative_lengths": [1, 2, 3, 6]})
    model.cfg = cfg.ner
    save_checkpoint(model, tok, cfg, {"types": TYPES}, tmp_path / "ckpt")
    texts = [t for t, _ in TEXTS]
    before = NerPredictor(model, tok, cfg, {"types": TYPES}).predict(texts)
    after = NerPredictor.load(tmp_path / "ckpt").predict(texts)
    assert before == after
    assert any(after)  # threshold 0: something is predicted for every text


@pytest.mark.parametrize("representation", ["mean", "endpoints", "pointer"])
def test_each_span_representation_trains_and_decodes(model_and_items, representation):
    model, tok, items = model_and_items
    cfg = NerConfig(length_bins=DESIGN_BINS, representative_lengths=[1, 2, 3, 6], span_representation=representation)
    torch.manual_seed(0)
    model = SpanFirstModel(model.encoder, len(TYPES), cfg, dropout=0.0)
    batch = collate(items, tok.pad_token_id)
    out = model(**batch)
    out.type_loss.backward()
    assert torch.isfinite(out.loss)
    for head in [model.type_head] + ([model.pointer.proj] if model.pointer is not None else []):  # learn from it
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    width = {"mean": 1, "endpoints": 3, "pointer": 3}[representation] * model.encoder.config.hidden_size
    assert model.type_head.in_features == width and (model.pointer is not None) == (representation == "pointer")
    dec = model.eval().decode(batch["input_ids"], batch["attention_mask"], batch["text_mask"])
    assert len(dec.spans) == len(items) and all(0.0 <= sc <= 1.0 for sp in dec.spans for *_, sc in sp)


def test_multilabel_type_loss_is_globalpointers_loss_over_gold_and_candidates(model_and_items):
    """The multilabel loss, recomputed by hand: per (sentence, type), log(1 + sum over non-gold
    rows of e^s) + log(1 + sum over gold rows of e^-s), the rows being the distinct gold spans and
    candidates of the sentence."""
    from spanfirst.ner.candidates import generate_candidates
    from spanfirst.ner.heads.common import GoldSpans

    model, tok, items = model_and_items
    cfg = NerConfig(length_bins=DESIGN_BINS, representative_lengths=[1, 2, 3, 6], type_decision="multilabel",
                    hard_negatives=1000)
    torch.manual_seed(0)
    model = SpanFirstModel(model.encoder, len(TYPES), cfg, dropout=0.0).eval()
    batch = collate(items, tok.pad_token_id)
    out = model(**batch)
    gold: GoldSpans = batch["gold"]
    cands = generate_candidates(out.start_logits, batch["text_mask"].bool(), cfg.top_k, cfg.candidate_lengths(),
                                cfg.length_bins)
    losses = []
    for i in range(len(items)):
        rows = {(int(s), int(e)) for b, s, e in zip(gold.batch, gold.start, gold.end) if b == i}
        rows |= {(int(s), int(e)) for b, s, e in zip(cands.batch_index, cands.start, cands.end) if b == i}
        rows = sorted(rows)
        pos = {(int(s), int(e), int(t)) for b, s, e, t in zip(gold.batch, gold.start, gold.end, gold.type) if b == i}
        logits = model.type_logits(out.hidden, torch.full((len(rows),), i), torch.tensor([s for s, _ in rows]),
                                   torch.tensor([e for _, e in rows]))
        for k in range(len(TYPES)):
            is_pos = torch.tensor([(s, e, k + 1) in pos for s, e in rows])
            s_k = logits[:, k]
            neg = torch.logsumexp(torch.cat([s_k[~is_pos], torch.zeros(1)]), 0)
            poss = torch.logsumexp(torch.cat([-s_k[is_pos], torch.zeros(1)]), 0)
            losses.append(neg + poss)
    assert torch.allclose(out.type_loss, torch.stack(losses).mean(), atol=1e-5)
    assert model.type_head.out_features == len(TYPES)  # no "no entity" class
