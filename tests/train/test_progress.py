"""Rank 0's training lines (spanfirst.train.progress) on a fake clock."""

import io

from spanfirst.train.progress import Progress, fmt_duration


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def run(tty: bool, rank: int = 0, step_s: float = 1.0, steps: int = 20, enabled: bool = True) -> list[str]:
    clock, out = Clock(), io.StringIO()
    p = Progress(2, steps, rank=rank, enabled=enabled, clock=clock, out=out, tty=tty)
    for epoch in (1, 2):
        p.start_epoch(epoch)
        for i in range(1, steps + 1):
            clock.t += step_s
            p.step(i, 8)
        p.end_epoch(0.5 / epoch, 0.25 * epoch)
    return out.getvalue().splitlines()


def test_tty_lines_every_5_seconds() -> None:
    lines = run(tty=True)
    assert lines[:4] == [
        "epoch 1/2 step 5/20 (25%) 8.0 ex/s, epoch ETA 15s",
        "epoch 1/2 step 10/20 (50%) 8.0 ex/s, epoch ETA 10s",
        "epoch 1/2 step 15/20 (75%) 8.0 ex/s, epoch ETA 5s",
        "epoch 1/2 done: train_loss 0.5000 dev_score 0.2500 (20s), ETA 20s for 1 more epoch(s)",
    ]
    assert lines[-1] == "epoch 2/2 done: train_loss 0.2500 dev_score 0.5000 (20s), ETA 0s for 0 more epoch(s)"
    assert len(lines) == 8


def test_log_lines_at_most_one_per_tenth() -> None:
    lines = run(tty=False, steps=100, step_s=0.5)  # 50 s epochs; nothing before 5 s (step 10)
    steps = [ln for ln in lines if " step " in ln and ln.startswith("epoch 1/")]
    assert steps[0] == "epoch 1/2 step 10/100 (10%) 16.0 ex/s, epoch ETA 45s"
    assert [ln.split()[3] for ln in steps] == [f"{k}/100" for k in range(10, 100, 10)]
    assert lines[len(steps)] == ("epoch 1/2 done: train_loss 0.5000 dev_score 0.2500 (50s), "
                                 "ETA 50s for 1 more epoch(s)")


def test_log_skips_step_lines_of_short_epochs() -> None:
    lines = run(tty=False, steps=20, step_s=0.2)  # 4 s epochs
    assert lines == [
        "epoch 1/2 done: train_loss 0.5000 dev_score 0.2500 (4s), ETA 4s for 1 more epoch(s)",
        "epoch 2/2 done: train_loss 0.2500 dev_score 0.5000 (4s), ETA 0s for 0 more epoch(s)",
    ]


def test_other_ranks_and_disabled_print_nothing() -> None:
    assert run(tty=True, rank=1) == []
    assert run(tty=False, rank=3, steps=100) == []
    assert run(tty=True, enabled=False) == []


def test_fmt_duration() -> None:
    assert [fmt_duration(x) for x in (0.4, 59.6, 61, 3723)] == ["0s", "1m00s", "1m01s", "1h02m03s"]
