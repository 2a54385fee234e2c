"""The heads benchmark's cost timing builds every head, span-first's fitted bins included."""

from benchmarks.heads import HEADS, head_costs
from spanfirst.data.types import Example, Span


def test_head_costs_time_every_head_against_the_encoder(tiny_backbone):
    text = "가수 김흥국이 왕십리에서 콘서트를 열었다."
    dev = [Example(text, [Span(3, 6, "PS"), Span(8, 11, "LC")])] * 40  # joined into 24-token inputs
    rows = head_costs(str(tiny_backbone), dev, ["LC", "PS"], HEADS, lengths=(24,), batch=2, repeats=1)
    assert [r["head"] for r in rows] == list(HEADS)
    assert all(r["infer"] > 0 and r["train"] > 0 and r["infer_ratio"] > 0 and r["params"] > 0 for r in rows)
