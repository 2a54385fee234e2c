"""Sweep efficiency: one search space, one trial-epoch budget, nine strategies, three search seeds,
each sweep run as a user runs it (``pipelines/sweep.py`` in its own process, its own Ray and a
SQLite MLflow store in the work folder):

(a) random search without early stopping (the baseline), (b) ASHA + random search, (c) Optuna
TPE with (asynchronous) Hyperband pruning, (d) Optuna TPE + Ray's (stopping) ASHA, (e) Optuna TPE +
promotion-based ASHA, (f) the same with reduction factor 3 (a rung promotes its top third), and,
with the base config's values as the first trial (``search.start_from_base``), (g) TPE + promotion-
based ASHA, (h) TPE + Ray's ASHA and (i) random search without early stopping (what the first trial
alone is worth). The row of the shipped default (the task's space file's scheduler, search and first
trial) says so.

``task="re"``: KLUE-RE with search_spaces/quickstart_re.yaml's space; ``task="ner"``: KLUE-NER with the
span-first knobs of search_spaces/ner_span_first.yaml (learning rates in the tiny encoder's range,
no LoRA: a random 2-layer encoder is not a base-size one), both on the tiny offline backbone.

Per-epoch progress comes from Tune's per-trial ``result.json`` (one line per reported epoch, with
Tune's ``timestamp``), so the curves count exactly the epochs the budget counted.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.report import table
from benchmarks.sweep import timed_sweep
from spanfirst.sweep.runner import first_trial, startup_trials
from spanfirst.sweep.space import SchedulerSpec, SearchSpec, load_space
from spanfirst.sweep.summary import SCHEDULER_STOPS

REPO = Path(__file__).resolve().parents[1]
RE_SPACE = REPO / "search_spaces" / "quickstart_re.yaml"
TARGET_SHARE = 0.95  # the target: this share of the best score any strategy reached


@dataclass(frozen=True)
class Strategy:
    key: str
    label: str
    scheduler: str  # scheduler.type
    algorithm: str  # search.algorithm
    promotion: bool = False  # scheduler.promotion
    reduction_factor: int | None = None  # scheduler.reduction_factor where not the setup's
    from_base: bool = False  # search.start_from_base: the first trial trains the base config's values


STRATEGIES = [
    Strategy("no-stop", "random search, no early stopping", "none", "random"),
    Strategy("asha", "ASHA + random search", "asha", "random"),
    Strategy("tpe-hyperband", "Optuna TPE + Hyperband pruning", "hyperband", "optuna"),
    Strategy("tpe-asha", "Optuna TPE + ASHA (Ray's, stopping)", "asha", "optuna"),
    Strategy("tpe-promotion", "Optuna TPE + promotion-based ASHA", "asha", "optuna", promotion=True),
    Strategy("tpe-promotion-rf3", "Optuna TPE + promotion-based ASHA, reduction factor 3", "asha", "optuna",
             promotion=True, reduction_factor=3),
    Strategy("tpe-promotion-base", "Optuna TPE + promotion-based ASHA, the base config first", "asha", "optuna",
             promotion=True, from_base=True),
    Strategy("tpe-asha-base", "Optuna TPE + ASHA (Ray's, stopping), the base config first", "asha", "optuna",
             from_base=True),
    Strategy("no-stop-base", "random search, no early stopping, the base config first", "none", "random",
             from_base=True),
]
BASELINE = "no-stop"
NER_SPACE = REPO / "search_spaces" / "ner_span_first.yaml"
# the span-first space's learning rates are for xlm-roberta-base; the tiny random encoder's are the quickstart's
NER_TINY_SPACE = {"train.lr_backbone": {"loguniform": [2.0e-4, 3.0e-3]},
                  "train.lr_heads": {"loguniform": [5.0e-4, 5.0e-3]}}


@dataclass(frozen=True)
class Setup:
    """What every strategy shares. About 3 minutes per sweep on an idle 2-core machine."""

    task: str = "re"  # re | ner
    max_train_examples: int = 1000  # the first rows of the train file; dev: all of it (RE) / the first 500 (NER)
    max_epochs: int = 6
    grace_period: int = 1
    reduction_factor: int = 2
    budget: int = 30  # search.max_trial_epochs
    num_samples: int = 64  # more than the budget lets any strategy start: the budget ends every sweep
    max_concurrent: int = 2
    seeds: tuple[int, ...] = (0, 1, 2)
    strategies: tuple[str, ...] = tuple(s.key for s in STRATEGIES)  # keys; the baseline always runs

    def chosen(self) -> list[Strategy]:
        unknown = set(self.strategies) - {s.key for s in STRATEGIES}
        if unknown:
            raise ValueError(f"unknown strategies {sorted(unknown)}; known: {[s.key for s in STRATEGIES]}")
        return [s for s in STRATEGIES if s.key == BASELINE or s.key in self.strategies]


def default_seeds(task: str) -> tuple[int, ...]:
    """Search seeds when none are given: three for RE, one for NER (``--seeds`` gives more)."""
    return (0, 1, 2) if task == "re" else (0,)


def _cli_options(setup: Setup) -> str:
    """The benchmark's command-line options that give ``setup`` (empty for the defaults), for the report."""
    default = Setup(task=setup.task, seeds=default_seeds(setup.task))
    opts = []
    if setup.seeds != default.seeds:
        opts.append("--seeds " + " ".join(map(str, setup.seeds)))
    if setup.strategies != default.strategies:
        opts.append("--strategies " + " ".join(k for k in setup.strategies if k != BASELINE))
    if setup.reduction_factor != default.reduction_factor:
        opts.append(f"--reduction-factor {setup.reduction_factor}")
    if setup.grace_period != default.grace_period:
        opts.append(f"--grace-period {setup.grace_period}")
    if setup.budget != default.budget:
        opts.append(f"--budget {setup.budget}")
    return "".join(" " + o for o in opts)


def _space_and_data(data_dir: Path, setup: Setup) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(base config, overrides, space, trial layout) of the task's sweep."""
    if setup.task == "ner":
        ner = yaml.safe_load(NER_SPACE.read_text(encoding="utf-8"))
        space = {k: v for k, v in ner["space"].items() if not k.startswith("model.lora.")}
        return (str(REPO / "spanfirst" / "configs" / "quickstart_ner.yaml"),
                {"data.train": str(data_dir / "klue-ner" / "klue-ner-train.tsv"),
                 "data.dev": str(data_dir / "klue-ner" / "klue-ner-dev.tsv"),
                 "data.max_train_examples": setup.max_train_examples, "data.max_dev_examples": 500},
                {**space, **NER_TINY_SPACE}, {"workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 0})
    re_space = yaml.safe_load(RE_SPACE.read_text(encoding="utf-8"))
    return (str(REPO / "spanfirst" / "configs" / "quickstart_re.yaml"),
            {"data.train": str(data_dir / "klue-re" / "klue-re-train.csv"),
             "data.dev": str(data_dir / "klue-re" / "klue-re-dev.csv"),
             "data.relation_list": str(data_dir / "klue-re" / "relation_list.json"),
             "data.max_train_examples": setup.max_train_examples},
            re_space["space"], re_space["trial"])


def shipped_default(space: Path = RE_SPACE) -> str | None:
    """The key of the strategy ``space`` ships (its scheduler, search algorithm and first trial);
    None where no strategy here is that one."""
    spec = yaml.safe_load(space.read_text(encoding="utf-8"))
    sch, search = SchedulerSpec(**spec.get("scheduler", {})), SearchSpec(**spec.get("search", {}))
    matches = [s for s in STRATEGIES if (s.scheduler, s.algorithm, s.promotion, s.from_base)
               == (sch.type, search.algorithm, sch.promotion, search.start_from_base)
               and s.reduction_factor in (None, sch.reduction_factor)]
    # a variant of the space's factor first
    return max(matches, key=lambda s: s.reduction_factor is not None).key if matches else None


def shown(strategy: Strategy, task: str = "re") -> str:
    """The strategy's label, marked where it is what the task's search space ships."""
    default = shipped_default(NER_SPACE if task == "ner" else RE_SPACE)
    return strategy.label + (" (the shipped default)" if strategy.key == default else "")


def write_space(data_dir: Path, work: Path, strategy: Strategy, setup: Setup, seed: int) -> Path:
    """The task's space and trial layout on the real KLUE files, with this strategy's search."""
    base, overrides, space, trial = _space_and_data(data_dir, setup)
    spec = {
        "base": base,
        "metric": "dev_score",
        "scheduler": {"type": strategy.scheduler, "grace_period": setup.grace_period,
                      "reduction_factor": strategy.reduction_factor or setup.reduction_factor,
                      "max_epochs": setup.max_epochs,
                      "promotion": strategy.promotion},
        "search": {"algorithm": strategy.algorithm, "num_samples": setup.num_samples,
                   "max_concurrent": setup.max_concurrent, "seed": seed, "max_trial_epochs": setup.budget,
                   "start_from_base": strategy.from_base},
        "trial": trial,
        "mlflow": {"experiment": f"bench-efficiency-{setup.task}-{strategy.key}",
                   "registered_model": f"bench-{setup.task}-{strategy.key}"},
        "overrides": overrides,
        "space": space,
    }
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{setup.task}-{strategy.key}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def epoch_events(exp_dir: Path, metric: str) -> list[tuple[float, float]]:
    """(timestamp, dev metric) of every epoch Tune recorded, over all trials, in time order."""
    events = []
    for result in exp_dir.glob("*/result.json"):
        for line in result.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            if isinstance(row.get(metric), (int, float)) and "timestamp" in row:
                events.append((float(row["timestamp"]), float(row[metric]), int(row.get("training_iteration", 0))))
    return [(t, score) for t, score, _ in sorted(events)]


def curve(events: list[tuple[float, float]], started: float) -> list[tuple[float, int, float]]:
    """(seconds since the sweep started, trial-epochs so far, best score so far) after each epoch."""
    out, best = [], -math.inf
    for n, (t, score) in enumerate(events, 1):
        best = max(best, score)
        out.append((t - started, n, best))
    return out


def first_reaching(points: list[tuple[float, int, float]], target: float) -> tuple[float, int] | None:
    """(seconds, trial-epochs) at which the best-so-far first reached ``target``."""
    return next(((s, n) for s, n, best in points if best >= target), None)


def first_trial_values(work: Path, strategy: Strategy, setup: Setup) -> str:
    """The first trial's values in a ``from_base`` strategy's first sweep, for the report: the base
    config's, and those drawn where the base's value lies outside the space (drawn with the seed)."""
    point, drawn = first_trial(load_space(work / f"{strategy.key}-seed{setup.seeds[0]}"
                                          / f"{setup.task}-{strategy.key}.yaml"))
    return ", ".join(f"`{k}: {v}`" + (" (drawn: the base's value is outside the space)" if k in drawn else "")
                     for k, v in point.items())


def measure(data_dir: Path, work: Path, strategy: Strategy, setup: Setup, seed: int) -> dict[str, Any]:
    space = write_space(data_dir, work / f"{strategy.key}-seed{seed}", strategy, setup, seed)
    res = timed_sweep(work / f"{strategy.key}-seed{seed}", space=space)
    rows = res["rows"]
    return {
        **res, "strategy": strategy, "seed": seed, "task": setup.task,
        "points": curve(epoch_events(res["exp_dir"], "dev_score"), res["started"]),
        "started_trials": sum(int(r["epochs"]) > 0 for r in rows),
        "scheduler_stops": sum(r["status"] in SCHEDULER_STOPS for r in rows),
        "ran_to_end": sum(r["status"] == "completed" for r in rows),
    }


def plot(results: list[dict[str, Any]], target: float, path: Path, title: str) -> Path:
    """Best-so-far dev metric against wall time and against trial-epochs: one colour and line style
    per strategy, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_time, by_epochs) = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    styles = dict(zip([s.key for s in STRATEGIES], ("-", "--", "-.", ":", "-", "--", "-", "-.", ":")))
    colours = dict(zip([s.key for s in STRATEGIES], ("tab:grey", "tab:blue", "tab:orange", "tab:green", "tab:red",
                                                      "tab:purple", "tab:brown", "tab:olive", "black")))
    labelled: set[str] = set()
    for r in results:
        key = r["strategy"].key
        secs, epochs, best = zip(*r["points"]) if r["points"] else ((), (), ())
        label = None if key in labelled else shown(r["strategy"], r["task"])
        labelled.add(key)
        for ax, xs in ((by_time, secs), (by_epochs, epochs)):
            ax.step(xs, best, where="post", linestyle=styles[key], color=colours[key], linewidth=1.3, alpha=0.85,
                    label=label)
    for ax, xlabel in ((by_time, "wall time since the sweep started (s)"), (by_epochs, "trial-epochs used")):
        ax.axhline(target, color="black", linestyle=":", linewidth=0.8)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    by_time.set_ylabel("best dev score so far")
    by_epochs.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{title} (one line per seed; dotted: target = {TARGET_SHARE:.0%} of the best score reached)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tpe_startup(setup: Setup, scheduler: str) -> int:
    """TPE's random start-up trials in this setup's sweeps with ``scheduler``, as the sweep picks them."""
    sch = SchedulerSpec(type=scheduler, grace_period=setup.grace_period, reduction_factor=setup.reduction_factor,
                        max_epochs=setup.max_epochs)
    return startup_trials(SearchSpec(num_samples=setup.num_samples, max_trial_epochs=setup.budget), sch)


def mean_sd(values: list[float]) -> str:
    """``mean ± sd`` over seeds (sd of the sample; a single value has none)."""
    if not values:
        return "n/a"
    m = statistics.mean(values)
    return f"{m:.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{m:.3f}"


def _mean(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None


def run(data_dir: Path, work: Path, png: Path, setup: Setup = Setup()) -> str:
    """Run every strategy with every seed; write the plot to ``png``; return the markdown section."""
    strategies = setup.chosen()
    results = [measure(data_dir, work, strategy, setup, seed) for seed in setup.seeds for strategy in strategies]
    best_any = max(r["points"][-1][2] for r in results if r["points"])
    target = TARGET_SHARE * best_any
    task_name = {"re": "KLUE-RE", "ner": "KLUE-NER"}[setup.task]
    metric_name = {"re": "dev micro F1", "ner": "dev strict F1"}[setup.task]
    plot(results, target, png, f"{task_name} sweep efficiency")
    for r in results:
        r["best"] = r["points"][-1][2] if r["points"] else float("nan")
        r["epochs_used"] = r["points"][-1][1] if r["points"] else 0
        r["hit"] = first_reaching(r["points"], target)

    def of(key: str) -> list[dict[str, Any]]:
        return [r for r in results if r["strategy"].key == key]

    def to_target_s(r: dict[str, Any]) -> float:
        """Seconds to the target; a sweep that never reached it counts its whole wall time (a lower bound)."""
        return float(r["hit"][0]) if r["hit"] else r["wall"]

    def to_target_epochs(r: dict[str, Any]) -> float:
        return float(r["hit"][1]) if r["hit"] else float(r["epochs_used"])

    base = of(BASELINE)
    base_wall = _mean([r["wall"] for r in base])
    base_hit_s = _mean([to_target_s(r) for r in base])
    base_hit_epochs = _mean([to_target_epochs(r) for r in base])
    rows = []
    for strategy in strategies:
        runs = of(strategy.key)
        reached = [r for r in runs if r["hit"]]
        rows.append([
            shown(strategy, setup.task) + (" (baseline)" if strategy.key == BASELINE else ""),
            mean_sd([r["best"] for r in runs]),
            mean_sd([r["wall"] for r in runs]),
            f"{_mean([r['wall'] for r in runs]) / base_wall:.2f}x",
            f"{len(reached)}/{len(runs)}",
            mean_sd([to_target_epochs(r) for r in runs]),
            f"{_mean([to_target_epochs(r) for r in runs]) / base_hit_epochs:.2f}x",
            mean_sd([to_target_s(r) for r in runs]),
            f"{_mean([to_target_s(r) for r in runs]) / base_hit_s:.2f}x",
            " / ".join(f"{r['started_trials']}" for r in runs),
            mean_sd([r["startup_median"] for r in runs]),
            mean_sd([r["epoch_median"] for r in runs]),
        ])
    per_run = [[shown(r["strategy"], r["task"]), r["seed"], r["best"], r["wall"],
                "not reached" if r["hit"] is None else r["hit"][1],
                "not reached" if r["hit"] is None else f"{r['hit'][0]:.0f}", r["started_trials"],
                r["startup_median"], r["load_before"]] for r in results]
    floors = [r["floor"] for r in results if r.get("floor") is not None]
    floor_note = (f" The filtered dictionary floor on the same dev set: {floors[0]:.3f}." if floors else
                  " The type-pair floor of KLUE-RE dev (the most frequent relation per subject/object type pair): "
                  "0.543, from the RE benchmark above.")
    cfg = {k: v for k, v in asdict(setup).items()}
    from_base = [s for s in strategies if s.from_base]
    point = first_trial_values(work, from_base[0], setup) if from_base else ""

    section = "sweep-efficiency" if setup.task == "re" else f"sweep-efficiency-{setup.task}"
    lines = [
        f"## Sweep efficiency, {task_name} (issues 6 and 15)",
        "",
        f"{task_name} (the first {setup.max_train_examples} training rows, to fit the time; dev: "
        + ("all 1,000 rows of `klue-re-dev.csv`" if setup.task == "re" else "the first 500 sentences of "
           "`klue-ner-dev.tsv`")
        + "), the tiny offline backbone, "
        + ("the search space of `search_spaces/quickstart_re.yaml` (focal gamma/alpha, label smoothing, markers, pooling, LR "
           "schedule, LR)" if setup.task == "re" else "the span-first knobs of `search_spaces/ner_span_first.yaml` "
           "(focal loss, label smoothing, length coverage, span representation, type decision, top-k, warm-up, "
           "dropout; learning rates in the tiny encoder's range, no LoRA)")
        + f", 1 Train worker per trial, {setup.max_concurrent} trials at a time, up to {setup.max_epochs} epochs per "
        f"trial. Every sweep gets the same budget of {setup.budget} trial-epochs (`search.max_trial_epochs`: the "
        "sweep ends when its trials together have reported that many epochs) and runs as a user runs it: "
        "`python pipelines/sweep.py SPACE` in its own process, its own Ray, a SQLite MLflow store; wall time "
        f"includes Ray start and registering the best model. Search seeds {', '.join(map(str, setup.seeds))}, each "
        f"strategy once per seed. {platform.machine()} CPU, {os.cpu_count()} cores; load average before each "
        "sweep: " + ", ".join(f"{r['load_before']:.1f}" for r in results) + ". Regenerate with "
        f"`python pipelines/benchmark.py {section}{_cli_options(setup)}` "
        f"(this run: {sum(r['wall'] for r in results) / 60:.0f} minutes).",
        "",
        f"- ASHA: grace period {setup.grace_period}, reduction factor {setup.reduction_factor}, rungs up to "
        f"{setup.max_epochs} epochs (`scheduler.type: asha`): Ray's stopping variant (a trial goes on unless it is "
        f"below the rung's top 1/{setup.reduction_factor} so far; the first to reach a rung always goes on) or "
        "promotion-based (`scheduler.promotion: true`: a trial pauses at each rung until it ranks in the rung's "
        f"top 1/{setup.reduction_factor}, then resumes from its checkpoint; its slot starts a new trial meanwhile).",
        "- No early stopping: `scheduler.type: none` (FIFO), every trial runs all epochs.",
        "- Optuna TPE (`search.algorithm: optuna`, seeded, random start-up trials: `search.startup_trials`, by "
        "default a quarter of the trials the budget is expected to start under the scheduler, here "
        f"{tpe_startup(setup, 'hyperband')} with Hyperband and {tpe_startup(setup, 'asha')} with ASHA; multivariate, "
        "constant liar) with Hyperband (`scheduler.type: hyperband`, asynchronous: one ASHA bracket per Hyperband "
        "bracket) or with ASHA.",
        *([f"- The base config first (`search.start_from_base: true`): the first trial trains the base config's "
           f"values of the searched keys ({point}, seed {setup.seeds[0]}); the searcher picks every later trial."] if point else []),
        "",
        f"Target: {TARGET_SHARE:.0%} of the best {metric_name} any sweep reached = {target:.3f}.{floor_note} "
        "Mean ± sd over the seeds; ratios are of means, to the no-early-stopping baseline of the same run. Times "
        "to the target count from the sweep process's start (Tune's per-report timestamps, 1 s resolution); a "
        "sweep that never reached the target counts its whole wall time and all its trial-epochs (lower bounds, "
        "which favour the strategy that missed).",
        "",
        table(["strategy", f"best {metric_name}", "wall time (s)", "ratio", "seeds reaching the target",
               "trial-epochs to target", "ratio", "wall s to target", "ratio", "trials started per seed",
               "per-trial start-up, median (s)", "median epoch, training (s)"], rows),
        "",
        "Every sweep:",
        "",
        table(["strategy", "seed", f"best {metric_name}", "wall time (s)", "trial-epochs to target",
               "wall s to target", "trials started", "start-up, median (s)", "load average before"], per_run),
        "",
        f"![best {metric_name} so far against wall time and trial-epochs]({png.name})",
        "",
        "Trials started counts trials that reported at least one epoch; the trials running when the budget ran "
        "out end as `stopped_by_epoch_budget`. Per-trial start-up is `startup_s` of the sweep's trials.csv: from "
        "the trial's slot being free to its first optimizer step (see the quickstart section).",
        "",
        f"Setup: `{json.dumps(cfg)}`.",
    ]
    return "\n".join(lines)
