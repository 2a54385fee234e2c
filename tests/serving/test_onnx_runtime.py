"""The ONNX runtimes on the tiny backbone: every NER head and RE exported and checked against
PyTorch the way registration checks them (dev score through the task's own evaluation, encoder
outputs), the predictors' answers under each runtime, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spanfirst import checkpoint as ckpt
from spanfirst.config import apply_overrides, load_config
from spanfirst.serving.onnx_runtime import OnnxEncoder, export_encoder, use_runtime
from spanfirst.serving.runtime_parity import measure_parity
from spanfirst.serving.settings import ServingSettings

pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e '.[onnx]'")

CONFIGS = Path(__file__).resolve().parents[2] / "spanfirst" / "configs"
TEXTS = ["가수 김흥국이 왕십리에서 콘서트를 열었다.", "삼성전자는 2024년 1월 서울에서 새 제품을 발표했다.",
         "경찰은 박씨의 딸(32)과 김모(33)씨 등 16명을 입건했다."]
NER_HEADS = ["span_first", "global_pointer", "efficient_global_pointer", "gliner", "bio"]


def saved_ner(head: str, out: Path) -> ckpt.Checkpoint:
    """A model of ``head`` after a few steps on the quickstart sample (enough to answer with
    entities), its threshold calibrated on dev, saved."""
    from spanfirst.ner.task import NerTask

    cfg = apply_overrides(load_config(CONFIGS / "quickstart_ner.yaml"), {
        "data.max_train_examples": 40, "data.max_dev_examples": 16, "model.head": head, "model.max_length": 64})
    task = NerTask(cfg, NerTask.prepare(cfg))
    torch.manual_seed(0)
    model = task.build_model()
    train_briefly(task, model)
    dev = task.dev_items()
    with torch.no_grad():
        task.evaluate(task.predict(model, dev, list(range(len(dev)))))  # calibrates a pending threshold
    # a dozen steps leave GLiNER's calibrated threshold above every span: all of them, then
    saved_cfg = apply_overrides(task.checkpoint_config(), {"ner.gliner.threshold": 0.0} if head == "gliner" else {})
    return ckpt.read(ckpt.save(model, task.tokenizer, saved_cfg, task.label_info(), out))


def train_briefly(task, model, steps: int = 12) -> None:
    items = task.train_items()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        batch = task.collate([items[(step * 8 + i) % len(items)] for i in range(8)])
        loss = task.loss(model, batch)
        optimizer.zero_grad(), loss.backward(), optimizer.step()
    model.eval()


def saved_re(out: Path) -> ckpt.Checkpoint:
    from spanfirst.re.task import ReTask

    cfg = apply_overrides(load_config(CONFIGS / "quickstart_re.yaml"), {
        "data.max_train_examples": 60, "data.max_dev_examples": 40, "model.max_length": 64})
    task = ReTask(cfg, ReTask.prepare(cfg))
    torch.manual_seed(0)
    model = task.build_model().eval()
    with torch.no_grad():  # an untrained classifier would give every row the same label
        model.classifier.weight.normal_(0.0, 1.0)
    return ckpt.read(ckpt.save(model, task.tokenizer, cfg, task.label_info(), out))


@pytest.mark.parametrize("head", NER_HEADS)
def test_every_ner_head_exported_decodes_dev_and_texts_as_torch_does(head, tmp_path):
    from spanfirst.ner.predictor import NerPredictor

    saved = saved_ner(head, tmp_path / head)
    path = export_encoder(saved, "onnx")
    assert path == saved.path / "encoder.onnx" and path.is_file()
    parity = measure_parity(saved, "onnx", tolerance=0.005)
    assert parity.accepted and parity.max_abs_diff < 1e-4 and parity.dev_inputs >= 16
    assert parity.runtime_score == pytest.approx(parity.torch_score, abs=1e-9)
    torch_pred = NerPredictor.from_checkpoint(saved)
    onnx_pred = NerPredictor.from_checkpoint(saved)
    use_runtime(onnx_pred.model, saved, "onnx")
    assert isinstance(onnx_pred.model.encoder, OnnxEncoder)
    want, got = torch_pred.predict(TEXTS), onnx_pred.predict(TEXTS)
    assert sum(map(len, want)) > 0
    assert [[(e["start"], e["end"], e["type"]) for e in t] for t in got] == \
        [[(e["start"], e["end"], e["type"]) for e in t] for t in want]
    assert [e["score"] for t in got for e in t] == pytest.approx([e["score"] for t in want for e in t], abs=1e-4)


def test_re_exported_in_both_runtimes_scores_dev_and_answers_as_torch_does(tmp_path):
    from spanfirst.re.predictor import RePredictor

    saved = saved_re(tmp_path / "re")
    export_encoder(saved, "onnx"), export_encoder(saved, "onnx-int8")
    exact = measure_parity(saved, "onnx", tolerance=0.005)
    assert exact.accepted and exact.max_abs_diff < 1e-4 and exact.dev_inputs == 40
    int8 = measure_parity(saved, "onnx-int8", tolerance=1.0)
    assert 1e-6 < int8.max_abs_diff < 1.0  # quantised: close, not equal
    assert int8.metrics() == {"parity_dev_f1_torch": int8.torch_score, "parity_dev_f1_onnx-int8": int8.runtime_score,
                              "parity_encoder_max_abs_diff_onnx-int8": int8.max_abs_diff}
    assert (saved.path / "encoder-int8.onnx").stat().st_size < (saved.path / "encoder.onnx").stat().st_size
    records = [{"text": t, "subject": {"start": 0, "end": 2, "type": "PER"}, "object": {"start": 3, "end": 6,
                "type": "LOC"}} for t in TEXTS]
    reference = RePredictor.from_checkpoint(saved)
    want = reference.logits([_example(r) for r in records])
    for runtime, tol in (("onnx", 1e-4), ("onnx-int8", 0.5)):
        pred = RePredictor.from_checkpoint(saved)
        use_runtime(pred.model, saved, runtime)
        assert abs(pred.logits([_example(r) for r in records]) - want).max() < tol


def _example(record: dict):
    from spanfirst.re.reader import parse_re_record

    return parse_re_record(record, "<test>", 1, require_label=False)


def test_a_runtime_the_checkpoint_was_not_exported_for_is_refused_by_name(tmp_path):
    saved = saved_re(tmp_path / "re")
    from spanfirst.re.predictor import RePredictor

    pred = RePredictor.from_checkpoint(saved)
    with pytest.raises(ckpt.CheckpointError, match="no encoder-int8.onnx.*--runtime onnx or onnx-int8"):
        use_runtime(pred.model, saved, "onnx-int8")
    with pytest.raises(ValueError, match="runs on the CPU"):
        use_runtime(pred.model, saved, "onnx", device="cuda")
    with pytest.raises(ValueError, match="model_config 'runtime' must be one of"):
        ServingSettings.from_config({"runtime": "tensorrt"})
    assert ServingSettings.from_config({"runtime": "onnx-int8"}).runtime == "onnx-int8"


def test_a_runtime_that_moves_dev_f1_too_much_is_refused_and_nothing_is_logged(tmp_path):
    """A stale ONNX file (exported from other weights) in the checkpoint: registration scores dev
    with it beside torch into the run, refuses with both figures, and logs no model; the
    checkpoint is left as it was."""
    import shutil

    import mlflow

    from spanfirst.backbone import load_encoder
    from spanfirst.serving.log_model import log_checkpoint_model
    from spanfirst.serving.runtime_parity import RuntimeRefused

    saved = saved_ner("span_first", tmp_path / "ner")
    other = ckpt.copy_model(saved.path, tmp_path / "other")
    encoder = load_encoder(str(other / "backbone"))
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(torch.randn_like(p))
    encoder.save_pretrained(other / "backbone")
    shutil.copy(export_encoder(ckpt.read(other), "onnx"), saved.path / "encoder.onnx")
    before = sorted(p.name for p in saved.path.iterdir())
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with mlflow.start_run() as run:
        with pytest.raises(RuntimeRefused, match=r"runtime onnx refused: it moves dev strict_f1 from 0\.\d{4} "
                                                 r"\(torch\) to 0\.\d{4} \(onnx\), \d+\.\d\d points, more than "
                                                 r"serving.max_f1_change \(0\.50 points\)"):
            log_checkpoint_model(saved.path, "ner", "refused-model", model_config={"runtime": "onnx"})
    finished = mlflow.get_run(run.info.run_id)
    assert finished.data.metrics["parity_dev_f1_torch"] > 0.005
    assert "parity_dev_f1_onnx" in finished.data.metrics and not mlflow.search_logged_models(output_format="list")
    assert not mlflow.MlflowClient().search_registered_models()
    assert sorted(p.name for p in saved.path.iterdir()) == before
