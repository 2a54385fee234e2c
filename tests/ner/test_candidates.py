import pytest
import torch

from spanfirst.config import TopKConfig
from spanfirst.ner.candidates import (
    Candidates,
    candidate_recall,
    dynamic_k,
    generate_candidates,
    length_to_bin,
    structural_reach,
)

DEFAULT = dict(k_min=4, k_max=12, alpha=0.12, beta=2)
DESIGN_BINS = [(1, 1), (2, 2), (3, 4), (5, 6)]  # the design note's bins


@pytest.mark.parametrize("T,k", [(25, 5), (45, 8), (97, 12)])
def test_dynamic_k_examples(T, k):
    assert dynamic_k(T, **DEFAULT) == k


def test_dynamic_k_clamps_and_tensor():
    assert dynamic_k(1, **DEFAULT) == 4  # ceil(0.12) + 2 = 3 -> k_min
    assert dynamic_k(0, **DEFAULT) == 4
    assert dynamic_k(500, **DEFAULT) == 12  # k_max
    got = dynamic_k(torch.tensor([1, 25, 45, 97, 500]), **DEFAULT)
    assert got.dtype == torch.long
    assert got.tolist() == [4, 5, 8, 12, 12]


def test_dynamic_k_float_ceil_is_exact():
    # 0.1 * 30 is 3.0000000000000004 in floating point; the formula means ceil(3) = 3.
    assert dynamic_k(30, k_min=1, k_max=100, alpha=0.1, beta=0) == 3
    assert dynamic_k(torch.tensor([30]), k_min=1, k_max=100, alpha=0.1, beta=0).tolist() == [3]


def test_length_to_bin_default_bins():
    bins = DESIGN_BINS  # [1], [2], [3-4], [5-6]
    got = length_to_bin(torch.tensor([1, 2, 3, 4, 5, 6, 7, 100]), bins)
    assert got.tolist() == [0, 1, 2, 2, 3, 3, 3, 3]
    assert length_to_bin(torch.tensor([[1, 4], [9, 2]]), bins).tolist() == [[0, 2], [3, 1]]


def _as_set(c: Candidates):
    return {(int(b), int(s), int(e), int(k)) for b, s, e, k in zip(c.batch_index, c.start, c.end, c.bin)}


def test_generate_candidates_clips_and_skips_specials():
    # Sentence 0: [CLS] t t t t t [SEP] pad -> text tokens 1..5. Sentence 1: [CLS] t t [SEP] pad...
    text_mask = torch.tensor([
        [0, 1, 1, 1, 1, 1, 0, 0],
        [0, 1, 1, 0, 0, 0, 0, 0],
    ], dtype=torch.bool)
    logits = torch.full((2, 8), -5.0)
    logits[:, 0] = 100.0  # specials and padding have the highest logits and must never be chosen
    logits[0, 6:] = 50.0
    logits[1, 3:] = 50.0
    logits[0, 5], logits[0, 2], logits[0, 3] = 3.0, 2.0, 1.0
    logits[1, 2], logits[1, 1] = 1.0, 0.5
    top_k = TopKConfig(k_min=2, k_max=2, alpha=0.0, beta=0)  # k = 2 for both sentences
    c = generate_candidates(logits, text_mask, top_k, [1, 2, 3, 6])
    assert _as_set(c) == {
        (0, 5, 5, 0),  # best start at the last text token: every length clips onto (5, 5), kept once
        (0, 2, 2, 0), (0, 2, 3, 1), (0, 2, 4, 2), (0, 2, 5, 3),  # length 6 clipped to the last token
        (1, 2, 2, 0),
        (1, 1, 1, 0), (1, 1, 2, 1),
    }
    assert len(c) == 8  # no duplicates
    assert text_mask[c.batch_index, c.start].all() and text_mask[c.batch_index, c.end].all()
    # Ordered by sentence, then start rank, then bin.
    assert c.batch_index.tolist() == sorted(c.batch_index.tolist())
    b0 = c.batch_index == 0
    assert c.rank[b0 & (c.start == 5)].tolist() == [0]
    assert c.rank[b0 & (c.start == 2)].tolist() == [1, 1, 1, 1]


def test_generate_candidates_k_is_dynamic_and_capped_by_text_length():
    T = 40
    text_mask = torch.zeros(3, T, dtype=torch.bool)
    text_mask[0, 1:26] = True  # 25 text tokens -> k = 5
    text_mask[1, 1:3] = True  # 2 text tokens -> k = min(4, 2)
    # sentence 2: no text at all -> no candidates
    logits = torch.randn(3, T)
    c = generate_candidates(logits, text_mask, TopKConfig(**DEFAULT), [1])
    counts = torch.bincount(c.batch_index, minlength=3).tolist()
    assert counts == [5, 2, 0]
    best5 = logits[0].masked_fill(~text_mask[0], float("-inf")).topk(5).indices
    assert set(c.start[c.batch_index == 0].tolist()) == set(best5.tolist())


def test_generate_candidates_bins_from_actual_length():
    text_mask = torch.tensor([[0, 1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    logits = torch.tensor([[9.0, 0.0, 5.0, 0.0, 0.0, 0.0, 9.0]])
    c = generate_candidates(logits, text_mask, TopKConfig(k_min=1, k_max=1, alpha=0.0, beta=0), [1, 2, 3, 6],
                            length_bins=DESIGN_BINS)
    # start 2, last text token 5: (2, 5) has length 4 -> bin [3-4] rather than the producing bin.
    assert _as_set(c) == {(0, 2, 2, 0), (0, 2, 3, 1), (0, 2, 4, 2), (0, 2, 5, 2)}


def test_generate_candidates_empty_batch():
    c = generate_candidates(torch.zeros(0, 5), torch.zeros(0, 5, dtype=torch.bool), TopKConfig(), [1, 2])
    assert len(c) == 0


def test_candidate_recall():
    c = Candidates(
        batch_index=torch.tensor([0, 0, 1]), start=torch.tensor([1, 2, 1]), end=torch.tensor([2, 2, 1]),
        bin=torch.tensor([1, 0, 0]), rank=torch.tensor([0, 1, 0]),
    )
    # gold: (0,1,2) hit, (1,1,1) hit, (1,2,2) miss, (0,1,1) miss
    got = candidate_recall(c, torch.tensor([0, 1, 1, 0]), torch.tensor([1, 1, 2, 1]), torch.tensor([2, 1, 2, 1]))
    assert got == pytest.approx(0.5)
    assert candidate_recall(c, torch.tensor([]), torch.tensor([]), torch.tensor([])) == 0.0


def test_structural_reach():
    reps = [1, 2, 3, 6]
    spans = [(0, 0), (0, 1), (0, 2), (0, 3), (2, 7), (4, 8)]  # lengths 1, 2, 3, 4, 6, 5
    assert structural_reach(spans, reps) == pytest.approx(4 / 6)
    # With sentence ends: (0, 3) ends at the last token 3 (length 6 clips onto it); (4, 8) does not end there.
    assert structural_reach(spans, reps, sentence_last=[9, 9, 9, 3, 9, 9]) == pytest.approx(5 / 6)
    # Longer than every representative length: unreachable even at the sentence end.
    assert structural_reach([(0, 6)], reps, sentence_last=[6]) == 0.0
    assert structural_reach([(0, 0, 1)], reps) == 1.0  # extra fields (a type) are ignored
    assert structural_reach([], reps) == 0.0


def test_fitted_bins_reach_the_training_entities_long_ones_included():
    import random

    from spanfirst.ner.candidates import fit_length_bins

    rng = random.Random(0)
    # mostly short entities, a long tail of titles 10-40 tokens long (2% of them)
    lengths = [rng.choice([1, 1, 2, 2, 2, 3, 3, 4, 5, 6, 7]) for _ in range(980)] + \
              [rng.randint(10, 40) for _ in range(20)]
    bins, reps = fit_length_bins(lengths, coverage=0.99)
    assert bins[0] == (1, 1) and all(lo == prev_hi + 1 for (lo, _), (_, prev_hi) in zip(bins[1:], bins))
    reach = structural_reach([(0, n - 1) for n in lengths], range(1, bins[-1][1] + 1))  # expand: all
    assert reach >= 0.99 and bins[-1][1] >= 10  # the titles the data has are reachable
    assert all(lo <= r <= hi for (lo, hi), r in zip(bins, reps))
    assert reps[:4] == [1, 2, 3, 4]
    assert fit_length_bins(lengths, coverage=1.0)[0][-1][1] == max(lengths)
    assert fit_length_bins([]) == ([(1, 1)], [1])


def test_task_fits_auto_bins_once_in_the_driver_and_saves_them(tiny_backbone, tmp_path):
    import json

    from spanfirst.config import NerRunConfig, apply_overrides
    from spanfirst.ner.task import NerTask

    data = tmp_path / "d.jsonl"
    rows = [("서울 에서 만났다 .", "서울"), ("아주 긴 이름 의 영화 제목 이다 .", "아주 긴 이름 의 영화 제목")] * 3
    data.write_text("".join(json.dumps({"text": t, "entities": [{"start": t.index(w), "end": t.index(w) + len(w),
                                                                 "type": "X"}]}, ensure_ascii=False) + "\n"
                            for t, w in rows), encoding="utf-8")
    cfg = apply_overrides(NerRunConfig(), {"model.backbone": str(tiny_backbone), "data.train": str(data),
                                           "data.dev": str(data), "ner.length_coverage": 1.0})
    assert cfg.ner.length_bins == "auto"
    prepared = NerTask.prepare(cfg)
    task = NerTask(cfg, prepared)
    longest = max(e - s + 1 for it in task.train_items() for s, e, _ in it.gold)
    assert task.cfg.ner.fitted and task.cfg.ner.length_bins[-1][1] == longest > 6
    assert task.head.span_lengths(task.cfg) == list(range(1, longest + 1))  # expand: all by default
    with pytest.raises(ValueError, match="length_class_weights"):
        NerTask.prepare(apply_overrides(cfg, {"ner.length_class_weights": [1.0, 2.0]}))
