"""Tokenised, aligned training data built once per sweep and setting, shared by every trial.

A task's features (NER: examples aligned to token spans, windows; RE: marked, tokenised pairs)
depend on a few settings only (backbone, max length, marker style, head, ...: each task's
:meth:`~spanfirst.tasks.Task.feature_settings`), not on learning rates or loss knobs. The sweep
driver owns one :class:`FeatureCache` actor; a trial asks it for its settings' key, and the first
trial with a new key builds the features while later ones (also concurrent ones: they wait for
that build) get them from the actor. Anything not named in ``feature_settings`` cannot be served
from another setting's entry: the key is a digest of every value named there.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from spanfirst.config import RunConfig
from spanfirst.tasks import Task, get_task


def feature_key(cfg: RunConfig, prepared: dict[str, Any]) -> str:
    """A digest of everything the task's features depend on (its ``feature_settings``)."""
    settings = {"task": cfg.task, **get_task(cfg.task).feature_settings(cfg, prepared)}
    blob = json.dumps(settings, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


class _FeatureCache:
    """An async actor: concurrent ``claim`` calls for a key being built wait for that build."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.pending: dict[str, asyncio.Event] = {}
        self.builds: dict[str, int] = {}
        self.hits: dict[str, int] = {}

    async def claim(self, key: str) -> tuple[str, Any]:
        """("hit", features) or ("build", None): the caller builds and then calls ``put`` (or ``abandon``)."""
        while key not in self.values and key in self.pending:
            await self.pending[key].wait()
        if key in self.values:
            self.hits[key] = self.hits.get(key, 0) + 1
            return "hit", self.values[key]
        self.pending[key] = asyncio.Event()
        self.builds[key] = self.builds.get(key, 0) + 1
        return "build", None

    async def put(self, key: str, features: Any) -> None:
        self.values[key] = features
        self.pending.pop(key).set()

    async def abandon(self, key: str) -> None:
        """The builder failed: the next claimant builds instead."""
        event = self.pending.pop(key, None)
        if event is not None:
            event.set()

    async def stats(self) -> dict[str, dict[str, int]]:
        return {"builds": dict(self.builds), "hits": dict(self.hits)}


def start_cache(name: str) -> Any:
    """The sweep's cache actor (no CPU of its own; it lives as long as the driver)."""
    import ray

    return ray.remote(num_cpus=0, max_concurrency=64)(_FeatureCache).options(name=name).remote()


def build_task(cfg: RunConfig, prepared: dict[str, Any], cache: Any | None = None) -> Task:
    """The task for this run, with its features from ``cache`` when another trial built them."""
    cls = get_task(cfg.task)
    if cache is None:
        return cls(cfg, prepared)
    import ray

    key = feature_key(cfg, prepared)
    outcome, features = ray.get(cache.claim.remote(key))
    if outcome == "hit":
        return cls(cfg, prepared, features)
    try:
        task = cls(cfg, prepared)
    except BaseException:
        ray.get(cache.abandon.remote(key))
        raise
    ray.get(cache.put.remote(key, task.features()))
    return task
