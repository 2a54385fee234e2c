"""NER evaluation report: strict/lenient F1 beside the dictionary baseline, and the
span-first diagnostics (length-bin confusion, candidate recall, NMS overlap) where the head
has them: a head without a length head, candidates or overlapping output leaves them out."""

from __future__ import annotations

from dataclasses import dataclass, field

from spanfirst.data.alignment import AlignedExample
from spanfirst.data.types import Example
from spanfirst.ner.baseline import DictionaryBaseline
from spanfirst.ner.metrics import confusion_matrix, lenient_f1, strict_f1


@dataclass
class SentencePrediction:
    """What the model said about one sentence (picklable, gathered across workers)."""

    index: int
    token_spans: list[tuple[int, int, int, float]]  # (start, end, type_id, score), end inclusive
    char_spans: list[tuple[int, int, str, float]]  # (start, end_exclusive, type, score)
    candidates: int | None = None  # spans the head scored (None: it scores no spans, BIO)
    gold_in_candidates: int | None = None
    length_pairs: list[tuple[int, int]] = field(default_factory=list)  # (gold bin, predicted bin) at gold starts
    exact_from: float = 0.0  # the lowest threshold the spans are exact for (a capped calibration decode)


_UNPLACED = -10  # token position of gold entities that never made it onto tokens: never matched


def ner_report(
    examples: list[Example],
    aligned: list[AlignedExample],
    preds: list[SentencePrediction],
    types: list[str],
    n_bins: int | None,
    structural_reach: float | None = None,
    baseline: DictionaryBaseline | None = None,
    overlap: bool = True,
) -> dict:
    """``n_bins`` None: no length-bin confusion; ``overlap`` False: the head's output cannot overlap."""
    preds = sorted(preds, key=lambda p: p.index)
    assert [p.index for p in preds] == list(range(len(examples))), "one prediction per example"
    gold_char = [[(s.start, s.end, s.type) for s in ex.entities] for ex in examples]
    pred_char = [[(s, e, t) for s, e, t, _ in p.char_spans] for p in preds]
    gold_tok: list[list[tuple]] = []
    for ex, al in zip(examples, aligned):
        placed = [(s, e, types[t - 1]) for s, e, t in al.gold]
        missing = len(ex.entities) - len(placed)
        gold_tok.append(placed + [(_UNPLACED - i, _UNPLACED - i, "?") for i in range(max(missing, 0))])
    pred_tok = [[(s, e, types[t - 1]) for s, e, t, _ in p.token_spans] for p in preds]

    pairs = [pair for p in preds for pair in p.length_pairs]
    n_gold_tok = sum(len(al.gold) for al in aligned)
    n_out = sum(len(p.token_spans) for p in preds)
    overlapping = sum(_overlapping(p.token_spans) for p in preds)
    report = {
        "strict": strict_f1(gold_char, pred_char),
        "lenient": lenient_f1(gold_tok, pred_tok, tolerance=1),
        "entities_predicted": n_out,
        "type_confusion": type_confusion(gold_char, pred_char, types),
    }
    if n_bins is not None:
        report["length_bin_confusion"] = confusion_matrix([g for g, _ in pairs], [q for _, q in pairs], n_bins)
    if all(p.candidates is not None and p.gold_in_candidates is not None for p in preds):
        report["candidates_per_sentence"] = sum(p.candidates for p in preds) / max(len(preds), 1)
        report["candidate_recall"] = sum(p.gold_in_candidates for p in preds) / max(n_gold_tok, 1)
        report["candidate_recall_ceiling"] = structural_reach
    if overlap:
        report["nms_overlap_rate"] = overlapping / max(n_out, 1)
    if baseline is not None:
        report["dictionary_baseline"] = {
            "strict": strict_f1(gold_char, [[(s.start, s.end, s.type) for s in baseline.predict(ex.text)] for ex in examples])
        }
    return report


def type_confusion(gold: list[list[tuple]], pred: list[list[tuple]], types: list[str]) -> list[list[int]]:
    """Gold type vs predicted type over spans with the same boundaries; index 0 is "O"
    (a gold span nothing was predicted at, or a prediction at boundaries no gold has)."""
    index = {t: i + 1 for i, t in enumerate(types)}
    n = len(types) + 1
    matrix = [[0] * n for _ in range(n)]
    for g, p in zip(gold, pred):
        g_at = {(s, e): index.get(t, 0) for s, e, t in g}
        p_at = {(s, e): index.get(t, 0) for s, e, t in p}
        for key in g_at.keys() | p_at.keys():
            matrix[g_at.get(key, 0)][p_at.get(key, 0)] += 1
    return matrix


def _overlapping(spans: list[tuple[int, int, int, float]]) -> int:
    """How many of a sentence's output spans overlap another output span."""
    n = 0
    for i, (s1, e1, *_rest) in enumerate(spans):
        if any(j != i and s1 <= e2 and s2 <= e1 for j, (s2, e2, *_r) in enumerate(spans)):
            n += 1
    return n


def summary(report: dict) -> dict[str, float]:
    """Flat scalar metrics for logging (Ray/MLflow): prefix dev_ is added by the caller."""
    out = {
        "strict_f1": report["strict"]["f1"],
        "strict_precision": report["strict"]["precision"],
        "strict_recall": report["strict"]["recall"],
        "lenient_f1": report["lenient"]["f1"],
    }
    for key in ("candidates_per_sentence", "candidate_recall", "nms_overlap_rate"):
        if key in report:
            out[key] = report[key]
    if "dictionary_baseline" in report:
        out["baseline_strict_f1"] = report["dictionary_baseline"]["strict"]["f1"]
    return out
