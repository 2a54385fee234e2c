"""The extension points hold: a head registered from this test module (the library untouched)
trains, evaluates, saves and reloads like a built-in one; checkpoints refuse another format
version by name; tasks and heads come from static lazy tables; the import graph keeps tasks apart."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spanfirst import checkpoint
from spanfirst.config import ConfigError, NerRunConfig, apply_overrides
from spanfirst.data.types import Example, Span
from spanfirst.ner.heads.base import NerHead, TrainingSpans
from spanfirst.ner.heads.common import DecodedBatch, GoldSpans, HeadOutput, encode_text
from spanfirst.ner.heads.registry import HEADS, get_head, known_heads, register_head

REPO = Path(__file__).resolve().parents[3]
LIBRARY = REPO / "spanfirst"


class SingleTokenModel(nn.Module):
    """A toy head: each text token scored per type; an entity is one token with probability > 0.5."""

    def __init__(self, encoder: nn.Module, num_types: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.scorer = nn.Linear(encoder.config.hidden_size, num_types)

    def heads(self) -> list[nn.Module]:
        return [self.scorer]

    longest_span = 1
    merge_policy = (1.0, "forbid")

    def forward(self, input_ids: Tensor, attention_mask: Tensor, text_mask: Tensor,
                gold: GoldSpans | None = None) -> HeadOutput:
        logits = self.scorer(encode_text(self.encoder, input_ids, attention_mask))  # (B, T, K)
        if gold is None:
            return HeadOutput(None, logits)
        target = torch.zeros_like(logits)
        one = gold.start == gold.end
        target[gold.batch[one], gold.start[one], gold.type[one] - 1] = 1.0
        mask = text_mask.bool().unsqueeze(-1).expand_as(logits)
        return HeadOutput(F.binary_cross_entropy_with_logits(logits[mask], target[mask]), logits)

    @torch.no_grad()
    def decode(self, input_ids: Tensor, attention_mask: Tensor, text_mask: Tensor) -> DecodedBatch:
        probs = torch.sigmoid(self.forward(input_ids, attention_mask, text_mask).logits)
        probs = probs * text_mask.unsqueeze(-1)
        spans: list[list[tuple[int, int, int, float]]] = []
        for row in probs:
            score, kind = row.max(dim=-1)
            spans.append([(i, i, int(kind[i]) + 1, float(score[i])) for i in range(row.shape[0]) if score[i] > 0.5])
        scored = text_mask.sum(dim=1).tolist()  # every text token, once per sentence
        return DecodedBatch(spans, candidates_per_sentence=scored, max_width=1)


class SingleTokenHead(NerHead):
    name = "test_single_token"
    overlapping = False

    @classmethod
    def build(cls, encoder: nn.Module, cfg, labels: dict[str, Any], training: TrainingSpans | None = None) -> nn.Module:
        return SingleTokenModel(encoder, len(labels["types"]))

    @classmethod
    def span_lengths(cls, cfg) -> list[int]:
        return [1]


@pytest.fixture(scope="module")
def toy_head():
    if SingleTokenHead.name not in known_heads():
        register_head(SingleTokenHead)
    return SingleTokenHead


def write_span_jsonl(path: Path, examples: list[Example]) -> Path:
    path.write_text("".join(json.dumps({"text": ex.text, "entities": [
        {"start": s.start, "end": s.end, "type": s.type} for s in ex.entities]}, ensure_ascii=False) + "\n"
        for ex in examples), encoding="utf-8")
    return path


def test_a_head_registered_outside_the_library_trains_evaluates_saves_and_reloads(toy_head, tiny_backbone, tmp_path):
    from spanfirst.ner.predictor import NerPredictor
    from spanfirst.ner.task import NerTask

    texts = ["서울 에서 만났다 .", "부산 으로 갔다 .", "John met Mary ."]
    examples = [Example(t, [Span(t.index(w), t.index(w) + len(w), ty)]) for t, w, ty in
                [(texts[0], "서울", "LC"), (texts[1], "부산", "LC"), (texts[2], "Mary", "PS")]]
    data = write_span_jsonl(tmp_path / "toy.jsonl", examples)
    cfg = apply_overrides(NerRunConfig(), {"model.backbone": str(tiny_backbone), "model.head": toy_head.name,
                                           "data.train": str(data), "data.dev": str(data), "model.dropout": 0.0})
    task = NerTask(cfg, NerTask.prepare(cfg))
    torch.manual_seed(0)
    model = task.build_model()
    assert isinstance(model, SingleTokenModel)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = task.collate(task.train_items())
    first = float(task.loss(model, batch))
    for _ in range(150):
        opt.zero_grad()
        task.loss(model, batch).backward()
        opt.step()
    assert float(task.loss(model, batch)) < first / 4
    dev = task.dev_items()
    preds = task.predict(model, dev, list(range(len(dev))))
    flat, report = task.evaluate(preds)
    assert report["candidate_recall_ceiling"] == pytest.approx(
        sum(e == s for it in dev for s, e, _ in it.gold) / sum(len(it.gold) for it in dev))
    assert "nms_overlap_rate" not in flat  # declared flat
    out = checkpoint.save(model, task.tokenizer, cfg, task.label_info(), tmp_path / "ckpt")
    served = NerPredictor.load(out).predict(texts)
    assert [[(e["start"], e["end"], e["type"]) for e in ents] for ents in served] == \
        [sorted((a, b, t) for a, b, t, _ in p.char_spans) for p in sorted(preds, key=lambda p: p.index)]


def test_head_registry_fails_loudly(toy_head):
    assert {*HEADS, toy_head.name} == set(known_heads())
    with pytest.raises(KeyError, match=r"unknown NER head 'crf'.*span_first"):
        get_head("crf")
    with pytest.raises(ValueError, match="exists already"):
        register_head(type("Again", (SingleTokenHead,), {"name": "bio"}))
    with pytest.raises(ConfigError, match=r"model.head.*crf"):
        apply_overrides(NerRunConfig(), {"model.head": "crf"})
    assert all(get_head(name).name == name for name in HEADS)


def test_task_table_is_lazy_and_fails_loudly():
    from spanfirst.tasks import TASKS, get_task

    assert {get_task(name).name for name in TASKS} == set(TASKS)
    with pytest.raises(KeyError, match=r"unknown task 'ocr'; known: \['ner', 're'\]"):
        get_task("ocr")


def test_a_checkpoint_of_another_format_version_names_both_versions(tiny_backbone, tmp_path):
    from spanfirst.backbone import load_encoder, load_tokenizer
    from spanfirst.ner.heads.span_first import SpanFirstModel

    cfg = apply_overrides(NerRunConfig(), {"model.backbone": str(tiny_backbone), "ner.length_bins": [[1, 1], [2, 3]],
                                           "ner.representative_lengths": [1, 2]})
    model = SpanFirstModel(load_encoder(str(tiny_backbone)), 2, cfg.ner)
    out = checkpoint.save(model, load_tokenizer(str(tiny_backbone)), cfg, {"types": ["A", "B"]}, tmp_path / "ckpt")
    assert checkpoint.read(out, task="ner").labels == {"types": ["A", "B"]}
    with pytest.raises(checkpoint.CheckpointError, match="a 'ner' checkpoint, not a 're' one"):
        checkpoint.read(out, task="re")
    manifest = out / "labels.json"
    saved = json.loads(manifest.read_text(encoding="utf-8"))
    for version, hint in ((checkpoint.CHECKPOINT_VERSION + 1, "newer"), (1, "older")):
        manifest.write_text(json.dumps({**saved, "version": version}), encoding="utf-8")
        with pytest.raises(checkpoint.CheckpointError,
                           match=rf"version {version}, but this spanfirst reads version "
                                 rf"{checkpoint.CHECKPOINT_VERSION}.*{hint}"):
            checkpoint.read(out)
    (out / "heads.safetensors").unlink()
    with pytest.raises(checkpoint.CheckpointError, match="missing heads.safetensors"):
        checkpoint.read(out)


# -- the house rules, read from the source ------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every spanfirst module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("spanfirst")}


def test_no_task_package_imports_another_and_tasks_py_imports_none():
    graph = {_module_name(p): _imports(p) for p in LIBRARY.rglob("*.py")}
    packages = ("spanfirst.ner", "spanfirst.re")
    for module, imported in graph.items():
        own = next((p for p in packages if module == p or module.startswith(p + ".")), None)
        others = [m for m in imported for p in packages if p != own and (m == p or m.startswith(p + "."))]
        if module == "spanfirst.tasks" or own:
            assert not others, f"{module} imports {others}"


def test_only_checkpoint_py_names_the_checkpoint_files():
    """String constants (docstrings aside) naming a checkpoint file appear in checkpoint.py alone."""
    names = ("labels.json", "heads.safetensors")
    offenders = []
    for path in LIBRARY.rglob("*.py"):
        if path.name == "checkpoint.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                    and any(n in node.value for n in names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders
