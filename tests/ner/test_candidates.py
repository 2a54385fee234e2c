import pytest
import torch

from spanfirst.config import NerConfig, TopKConfig
from spanfirst.ner.candidates import (
    Candidates,
    candidate_recall,
    dynamic_k,
    generate_candidates,
    length_to_bin,
    structural_reach,
)

DEFAULT = dict(k_min=4, k_max=12, alpha=0.12, beta=2)


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
    bins = NerConfig().length_bins  # [1], [2], [3-4], [5-6]
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
    c = generate_candidates(logits, text_mask, TopKConfig(), [1])
    counts = torch.bincount(c.batch_index, minlength=3).tolist()
    assert counts == [5, 2, 0]
    best5 = logits[0].masked_fill(~text_mask[0], float("-inf")).topk(5).indices
    assert set(c.start[c.batch_index == 0].tolist()) == set(best5.tolist())


def test_generate_candidates_bins_from_actual_length():
    text_mask = torch.tensor([[0, 1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    logits = torch.tensor([[9.0, 0.0, 5.0, 0.0, 0.0, 0.0, 9.0]])
    c = generate_candidates(logits, text_mask, TopKConfig(k_min=1, k_max=1, alpha=0.0, beta=0), [1, 2, 3, 6],
                            length_bins=NerConfig().length_bins)
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
