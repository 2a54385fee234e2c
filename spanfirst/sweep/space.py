"""Search-space files: one YAML per task/setting, mapped 1:1 onto Ray Tune distributions.

A file names its base run config and a ``space:`` whose keys are dotted paths into that base's
task config (:class:`~spanfirst.config.NerRunConfig` or :class:`~spanfirst.config.ReRunConfig`).
Every key is checked against the config by applying sample values with
:func:`~spanfirst.config.apply_overrides` (so an unknown path, a key of the other task *and* a
value the config would reject fail here, naming the file and the key, before Ray starts rather
than in trial 17 an hour into a sweep)::

    base: ../spanfirst/configs/quickstart_ner.yaml   # relative to this file
    metric: dev_score                                  # optional; the task's main dev metric
    scheduler: {type: asha, grace_period: 1, reduction_factor: 2, max_epochs: 4}   # or hyperband / none
    search: {algorithm: random, num_samples: 8, max_concurrent: 2, seed: 0}   # max_trial_epochs: N (optional)
    trial: {workers: 1, cpus_per_worker: 1, gpus_per_worker: 0, max_failures: auto}
    mlflow: {experiment: spanfirst-quickstart, registered_model: spanfirst-ner}
    overrides: {data.max_train_examples: 300}         # fixed values for every trial
    space:
      train.lr_heads: {loguniform: [1.0e-4, 1.0e-2]}
      ner.top_k.k_min: {choice: [2, 4, 6]}
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from spanfirst.config import (ConfigError, RunConfig, Strict, apply_overrides, describe_errors, get_dotted,
                              load_config, other_task_hint, path_known, read_yaml_mapping)

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "quniform", "randint", "grid")

class SchedulerSpec(Strict):
    """ASHA: a trial must survive ``grace_period`` epochs; each rung keeps 1/``reduction_factor``.
    ``type`` picks the scheduler (see :mod:`spanfirst.sweep.schedulers`); ``none`` ignores the rungs."""

    type: Literal["asha", "hyperband", "none"] = "asha"
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1.0)
    max_epochs: int = Field(4, ge=1)  # also every trial's train.epochs
    # asha only. true: promotion-based ASHA (a trial pauses at each rung until it ranks in the top
    # 1/reduction_factor there, then resumes from its checkpoint); false: Ray's stopping ASHA
    promotion: bool = False

    @model_validator(mode="after")
    def _order(self) -> "SchedulerSpec":
        if self.grace_period > self.max_epochs:
            raise ValueError(f"grace_period ({self.grace_period}) exceeds max_epochs ({self.max_epochs})")
        if self.promotion and self.type != "asha":
            raise ValueError(f"promotion: true needs type: asha (got type: {self.type})")
        return self


class SearchSpec(Strict):
    # optuna: Optuna's TPE (model-based), seeded; random start-up trials first (startup_trials)
    algorithm: Literal["random", "optuna", "hyperopt"] = "optuna"
    num_samples: int = Field(8, ge=1)
    # TPE's random trials before it models the results; None: a quarter of num_samples, 2 to 10
    startup_trials: int | None = Field(None, ge=1)
    max_concurrent: int | None = Field(None, ge=1)  # further bounded by what the cluster fits
    seed: int = 0
    # compute budget: the whole sweep ends once its trials together have reported this many epochs
    max_trial_epochs: int | None = Field(None, ge=1)
    # the first trial trains the base config's own values of the searched keys (those inside the
    # space), as SMAC's use_default_config does: the sweep starts from what the user would train alone
    start_from_base: bool = True


class TrialSpec(Strict):
    """Resources of one trial: a single worker trains in the trial's own process (which reserves
    these), several form a Ray Train worker group (the trial function itself then takes ~none)."""

    workers: int = Field(1, ge=1)
    cpus_per_worker: int = Field(1, ge=1)  # also train.threads_per_worker
    gpus_per_worker: float = Field(0.0, ge=0.0)  # fractions let several trials share a GPU
    # restarts of a trial whose process, worker or node was lost, each from its latest checkpoint
    # (train.max_failures); auto: 2 on a multi-node cluster (spot nodes come and go), 0 on one machine
    max_failures: int | Literal["auto"] = "auto"


class MlflowSpec(Strict):
    experiment: str | None = None  # default: spanfirst-<space file stem>
    registered_model: str | None = None  # default: spanfirst-<task>
    tracking_uri: str | None = None


class SpaceFile(Strict):
    base: str
    metric: str = "dev_score"
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    trial: TrialSpec = Field(default_factory=TrialSpec)
    mlflow: MlflowSpec = Field(default_factory=MlflowSpec)
    overrides: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, dict[str, Any]] = Field(min_length=1)


class SweepSpace:
    """A validated space file: the effective base config and the distributions by dotted path."""

    def __init__(self, path: Path, spec: SpaceFile, base: RunConfig, dists: dict[str, tuple[str, Any]]) -> None:
        self.path, self.spec, self.base, self.dists = path, spec, base, dists

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def experiment(self) -> str:
        return self.spec.mlflow.experiment or f"spanfirst-{self.name}"

    @property
    def registered_model(self) -> str:
        return self.spec.mlflow.registered_model or f"spanfirst-{self.base.task}"

    def tune_space(self) -> dict[str, Any]:
        """``param_space`` for the Tuner: dotted path -> Ray Tune domain."""
        return {key: to_tune(kind, arg) for key, (kind, arg) in self.dists.items()}

    def base_point(self) -> dict[str, Any]:
        """The base config's values of the searched keys that lie inside their distributions (the
        first trial's values under ``search.start_from_base``); a space with a grid gets none (Tune
        would cross the point with the grid)."""
        if any(kind == "grid" for kind, _ in self.dists.values()):
            return {}
        tree = self.base.to_dict()
        point = {}
        for key, (kind, arg) in self.dists.items():
            value = get_dotted(tree, key)
            if kind == "choice":
                same = [v for v in arg if v == value and isinstance(v, bool) == isinstance(value, bool)]
                if same:
                    point[key] = same[0]
            elif within(kind, arg, value):
                point[key] = value
        return point

    def resolved(self) -> dict[str, Any]:
        """A JSON-able description of the space (logged on the sweep's parent run)."""
        return {"space_file": self.path.name, "base_task": self.base.task, **self.spec.model_dump(mode="json"),
                "distributions": {k: {kind: arg} for k, (kind, arg) in self.dists.items()}}


def to_tune(kind: str, arg: Any) -> Any:
    """One distribution -> its Ray Tune counterpart (randint's upper bound is exclusive, as in Ray)."""
    from ray import tune

    if kind == "choice":
        return tune.choice(list(arg))
    if kind == "grid":
        return tune.grid_search(list(arg))
    if kind == "uniform":
        return tune.uniform(*arg)
    if kind == "loguniform":
        return tune.loguniform(*arg)
    if kind == "quniform":
        return tune.quniform(*arg)
    if kind == "randint":
        return tune.randint(*arg)
    raise ValueError(f"unknown distribution '{kind}'")


def within(kind: str, arg: Any, value: Any) -> bool:
    """Whether a numeric distribution (uniform, loguniform, quniform, randint) can draw ``value``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    lo, hi = arg[0], arg[1]
    if kind == "randint":
        return float(value).is_integer() and lo <= value < hi
    if kind == "quniform":
        return lo <= value <= hi and math.isclose(value / arg[2], round(value / arg[2]), abs_tol=1e-9)
    return lo <= value <= hi


def _numbers(where: str, kind: str, arg: Any, n: int, integer: bool = False) -> list[float]:
    if not isinstance(arg, list) or len(arg) != n:
        raise ConfigError(f"{where}: '{kind}' takes a list of {n} numbers, got {arg!r}")
    out = []
    for v in arg:
        try:
            num = float(v) if not isinstance(v, bool) else math.nan
        except (TypeError, ValueError):
            num = math.nan
        if not math.isfinite(num) or (integer and num != int(num)):
            raise ConfigError(f"{where}: '{kind}' bound {v!r} is not {'an integer' if integer else 'a number'}")
        out.append(int(num) if integer else num)
    return out


def parse_distribution(where: str, raw: dict[str, Any]) -> tuple[str, Any]:
    """``{uniform: [0, 1]}`` -> ("uniform", [0.0, 1.0]) with bounds checked; errors name ``where``."""
    if len(raw) != 1:
        raise ConfigError(f"{where}: give exactly one distribution ({', '.join(DISTRIBUTIONS)}), got {sorted(raw)}")
    (kind, arg), = raw.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: unknown distribution '{kind}' (known: {', '.join(DISTRIBUTIONS)})")
    if kind in ("choice", "grid"):
        if not isinstance(arg, list) or not arg:
            raise ConfigError(f"{where}: '{kind}' takes a non-empty list of values, got {arg!r}")
        return kind, arg
    if kind == "quniform":
        lo, hi, q = _numbers(where, kind, arg, 3)
        if q <= 0:
            raise ConfigError(f"{where}: quniform step q must be > 0, got {q}")
    else:
        lo, hi = _numbers(where, kind, arg, 2, integer=kind == "randint")
    if lo >= hi:
        raise ConfigError(f"{where}: lower bound {lo} must be below upper bound {hi}")
    if kind == "loguniform" and lo <= 0:
        raise ConfigError(f"{where}: loguniform needs a lower bound > 0, got {lo}")
    return kind, ([lo, hi, q] if kind == "quniform" else [lo, hi])


def sample_values(kind: str, arg: Any) -> list[Any]:
    """Values that stand for the whole distribution when checking it against the config."""
    if kind in ("choice", "grid"):
        return list(arg)
    if kind == "randint":
        return [arg[0], arg[1] - 1]
    if kind == "quniform":
        lo, hi, q = arg
        return [round(lo / q) * q, round(hi / q) * q]
    return [arg[0], arg[1]]


def trial_base(spec: SpaceFile, base: RunConfig, source: str) -> RunConfig:
    """The base config every trial starts from: file overrides, epochs and worker layout applied."""
    fixed = dict(spec.overrides)
    fixed.update({"train.epochs": spec.scheduler.max_epochs, "train.num_workers": spec.trial.workers,
                  "train.threads_per_worker": spec.trial.cpus_per_worker,
                  "train.use_gpu": spec.trial.gpus_per_worker > 0})
    return apply_overrides(base, fixed, source)


def _merge(raw: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    out = dict(raw)
    for key, value in updates.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def load_space(path: str | Path, updates: dict[str, Any] | None = None) -> SweepSpace:
    """Read and fully validate a space file; every error names the file and the key.

    ``updates`` (command-line settings such as ``{"search": {"num_samples": 4}}``) are merged
    into the file before validation, so they are checked the same way.
    """
    path = Path(path)
    raw = _merge(read_yaml_mapping(path, "search-space file"), updates or {})
    try:
        spec = SpaceFile.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe_errors(err, str(path))) from None
    base_path = (path.resolve().parent / spec.base)
    try:
        base = load_config(base_path)
    except ConfigError as err:
        raise ConfigError(f"{path}: key 'base': {err}") from None
    # Paths are checked against the base's own task class: an RE space's ner.* key fails here.
    schema = type(base)
    for key in spec.overrides:
        if not path_known(schema, key):
            raise ConfigError(f"{path}: overrides.{key}: unknown config key '{key}'{other_task_hint(base.task, key)}")
    try:
        base = trial_base(spec, base, f"{path}: overrides")
    except ConfigError as err:
        raise ConfigError(str(err)) from None
    dists: dict[str, tuple[str, Any]] = {}
    for key, raw_dist in spec.space.items():
        where = f"{path}: space.{key}"
        if not path_known(schema, key):
            raise ConfigError(f"{where}: unknown config key '{key}'{other_task_hint(base.task, key)}")
        if key in ("train.epochs", "train.num_workers", "train.seed", "train.max_failures"):
            raise ConfigError(f"{where}: set by the sweep itself (scheduler.max_epochs, trial.workers, search.seed, "
                              "trial.max_failures)")
        kind, arg = parse_distribution(where, raw_dist)
        for value in sample_values(kind, arg):
            try:
                apply_overrides(base, {key: value}, "run config")
            except ConfigError as err:
                raise ConfigError(f"{where}: value {value!r} is rejected by the run config: {err}") from None
        dists[key] = (kind, arg)
    return SweepSpace(path, spec, base, dists)


def find_space_files(root: str | Path) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` below ``root``, recursively (a flat listing misses sub-folders)."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
