"""Registration's check of an ONNX runtime against PyTorch: the checkpoint's dev set decoded by
both, and the runtime refused when it moves the dev score more than ``serving.max_f1_change``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from spanfirst import checkpoint as ckpt
from spanfirst.serving.onnx_runtime import use_runtime
from spanfirst.tasks import get_task


class RuntimeRefused(ValueError):
    """The runtime moved the dev score more than the tolerance; nothing was registered."""


@dataclass(frozen=True)
class Parity:
    runtime: str
    metric: str  # the task's main dev metric (strict span F1, micro F1 without the negative label)
    torch_score: float
    runtime_score: float
    max_abs_diff: float  # encoder outputs, real tokens of the first dev batch: what the runtime changes
    dev_inputs: int
    tolerance: float

    @property
    def change(self) -> float:
        return self.runtime_score - self.torch_score

    @property
    def accepted(self) -> bool:
        return abs(self.change) <= self.tolerance + 1e-12

    def metrics(self) -> dict[str, float]:
        """For the registering MLflow run."""
        return {"parity_dev_f1_torch": self.torch_score, f"parity_dev_f1_{self.runtime}": self.runtime_score,
                f"parity_encoder_max_abs_diff_{self.runtime}": self.max_abs_diff}

    def summary(self) -> str:
        return (f"runtime {self.runtime}: dev {self.metric} {self.runtime_score:.4f} against torch's "
                f"{self.torch_score:.4f} ({self.change * 100:+.2f} points, tolerance {self.tolerance * 100:.2f}) on "
                f"{self.dev_inputs} dev inputs; encoder outputs differ by at most {self.max_abs_diff:.2e}")


def measure_parity(checkpoint: ckpt.Checkpoint, runtime: str, tolerance: float) -> Parity:
    """Decode the checkpoint's dev file (``data.dev``, capped as in training) with PyTorch, then with
    ``runtime`` (its ONNX file already in the checkpoint), and score both as training does."""
    cfg, task_cls = checkpoint.cfg, get_task(checkpoint.task)
    for split, path in (("dev", cfg.data.dev), ("train", cfg.data.train)):
        if not path or not Path(path).is_file():
            raise FileNotFoundError(f"checking runtime {runtime!r} against torch needs the checkpoint's data.{split} "
                                    f"file, which is not here: {path!r}")
    task = task_cls(cfg, task_cls.prepare_eval(cfg, checkpoint, cfg.data.max_dev_examples))
    model, _tokenizer = checkpoint.load_model(task_cls.build_from_checkpoint)
    items = task.dev_items()
    indices = list(range(len(items)))
    first = task.collate(items[: cfg.train.eval_batch_size])
    ids, mask = first["input_ids"], first["attention_mask"]
    with torch.no_grad():
        torch_score = task.evaluate(task.predict(model, items, indices))[0][task.main_metric]
        before = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        use_runtime(model, checkpoint, runtime)
        after = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        runtime_score = task.evaluate(task.predict(model, items, indices))[0][task.main_metric]
    diff = float((before - after).abs()[mask.bool()].max()) if mask.any() else 0.0
    return Parity(runtime, task.main_metric, float(torch_score), float(runtime_score), diff, len(items), tolerance)


def refusal(parity: Parity) -> str:
    return (f"runtime {parity.runtime} refused: it moves dev {parity.metric} from {parity.torch_score:.4f} (torch) to "
            f"{parity.runtime_score:.4f} ({parity.runtime}), {abs(parity.change) * 100:.2f} points, more than "
            f"serving.max_f1_change ({parity.tolerance * 100:.2f} points); register with another --runtime, or "
            "raise serving.max_f1_change. Nothing was registered; the run and its checkpoint are kept.")
