import pytest
import torch

from spanfirst.ner.nms import iou_1d, nms_1d, overlap_rate


def test_iou_1d_pairwise():
    a_s, a_e = torch.tensor([0, 0]), torch.tensor([3, 0])
    b_s, b_e = torch.tensor([1, 1, 0]), torch.tensor([3, 1, 3])
    got = iou_1d(a_s, a_e, b_s, b_e)
    assert got.shape == (2, 3)
    expected = [[3 / 4, 1 / 4, 1.0], [0.0, 0.0, 1 / 4]]
    assert torch.allclose(got, torch.tensor(expected))


# A=(0,3) .9; B=(1,3) .8 IoU(A)=.75; C=(3,6) .7 crosses A (IoU 1/7);
# D=(0,0) .6 nested in A (IoU .25); E=(8,9) .5 disjoint.
STARTS = [0, 1, 3, 0, 8]
ENDS = [3, 3, 6, 0, 9]
SCORES = [0.9, 0.8, 0.7, 0.6, 0.5]


@pytest.mark.parametrize("nesting,expected", [
    ("allow", [0, 2, 3, 4]),
    ("partial", [0, 3, 4]),
    ("forbid", [0, 4]),
])
def test_nesting_policies(nesting, expected):
    assert nms_1d(torch.tensor(STARTS), torch.tensor(ENDS), torch.tensor(SCORES), 0.5, 10, nesting) == expected


def test_iou_suppression_threshold_is_strict():
    # (0,1) vs (1,1): IoU exactly 0.5 -> not suppressed under "allow"; (0,1) vs (0,2): 2/3 -> suppressed.
    assert nms_1d([0, 1], [1, 1], [0.9, 0.8], 0.5, nesting="allow") == [0, 1]
    assert nms_1d([0, 0], [1, 2], [0.9, 0.8], 0.5, nesting="allow") == [0]
    assert nms_1d([0, 0], [1, 2], [0.9, 0.8], 0.7, nesting="allow") == [0, 1]


def test_ties_prefer_shorter_then_earlier():
    assert nms_1d([2, 2], [5, 3], [0.5, 0.5], nesting="forbid") == [1]
    assert nms_1d([2, 2], [5, 3], [0.5, 0.5], nesting="allow") == [1, 0]  # IoU 0.5, both kept, shorter first
    assert nms_1d([6, 1], [7, 2], [0.5, 0.5], nesting="forbid") == [1, 0]


def test_max_outputs_and_order():
    starts = [0, 2, 4, 6, 8]
    scores = [0.1, 0.5, 0.3, 0.9, 0.7]
    assert nms_1d(starts, starts, scores, max_outputs=3) == [3, 4, 1]
    assert nms_1d(starts, starts, scores, max_outputs=10) == [3, 4, 1, 2, 0]
    assert nms_1d([], [], []) == []


def test_unknown_policy():
    with pytest.raises(ValueError):
        nms_1d([0], [0], [1.0], nesting="maybe")


def test_overlap_rate():
    assert overlap_rate([[(0, 3, "A"), (2, 4, "B"), (6, 6, "A")], [(0, 0, "A")]]) == pytest.approx(0.5)
    assert overlap_rate([[(0, 3), (0, 0)]]) == 1.0
    assert overlap_rate([[], []]) == 0.0
