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
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from spanfirst.config import RunConfig
from spanfirst.tasks import Task, get_task

BEAT_S = 2.0  # a builder's heartbeat period
STALE_BUILD_S = 60.0  # a build whose builder has not beaten for this long is given up on


def feature_key(cfg: RunConfig, prepared: dict[str, Any]) -> str:
    """A digest of everything the task's features depend on (its ``feature_settings``)."""
    settings = {"task": cfg.task, **get_task(cfg.task).feature_settings(cfg, prepared)}
    blob = json.dumps(settings, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


class _FeatureCache:
    """An async actor: concurrent ``claim`` calls for a key being built wait for that build.

    A builder ``beat``s while it builds; one that stops beating for ``stale_s`` (its process or node
    was lost mid-build) is given up on and the next waiting claimant builds instead, so a lost
    builder costs one rebuild, never a sweep that waits forever."""

    def __init__(self, stale_s: float) -> None:
        self.stale_s = stale_s
        self.values: dict[str, Any] = {}
        self.pending: dict[str, asyncio.Event] = {}
        self.last_beat: dict[str, float] = {}
        self.builds: dict[str, int] = {}
        self.hits: dict[str, int] = {}

    async def claim(self, key: str) -> tuple[str, Any]:
        """("hit", features) or ("build", None): the caller builds and then calls ``put`` (or ``abandon``)."""
        while key not in self.values and key in self.pending:
            event = self.pending[key]
            try:
                await asyncio.wait_for(event.wait(), timeout=self.stale_s / 4)
            except asyncio.TimeoutError:
                if time.monotonic() - self.last_beat[key] > self.stale_s and self.pending.get(key) is event:
                    self._end_build(key)  # its builder is lost: this claimant builds
        if key in self.values:
            self.hits[key] = self.hits.get(key, 0) + 1
            return "hit", self.values[key]
        self.pending[key] = asyncio.Event()
        self.last_beat[key] = time.monotonic()
        self.builds[key] = self.builds.get(key, 0) + 1
        return "build", None

    async def beat(self, key: str) -> None:
        self.last_beat[key] = time.monotonic()

    async def put(self, key: str, features: Any) -> None:
        self.values[key] = features
        self._end_build(key)  # the waiters now find the value

    async def abandon(self, key: str) -> None:
        """The builder failed: the next claimant builds instead."""
        self._end_build(key)

    def _end_build(self, key: str) -> None:
        """Wakes the claimants waiting for ``key``'s build, if one is still pending."""
        event = self.pending.pop(key, None)
        if event is not None:
            event.set()

    async def stats(self) -> dict[str, dict[str, int]]:
        return {"builds": dict(self.builds), "hits": dict(self.hits)}


def start_cache(name: str, stale_s: float = STALE_BUILD_S) -> Any:
    """The sweep's cache actor (no CPU of its own; it lives as long as the driver), on the driver's
    node: a worker node may be a spot instance that goes away mid-sweep, the driver's node cannot
    without ending the sweep anyway. (Strict affinity: a soft one lets Ray place the actor on a
    worker node when the head has no CPUs.)"""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return (ray.remote(num_cpus=0, max_concurrency=64)(_FeatureCache)
            .options(name=name, scheduling_strategy=here).remote(stale_s))


def cache_stats(cache: Any) -> dict[str, dict[str, int]]:
    """The cache's builds and hits by key; empty when the cache actor is gone (its node was lost)."""
    import ray

    try:
        return ray.get(cache.stats.remote())
    except ray.exceptions.RayActorError:
        return {}


@contextmanager
def beating(cache: Any, key: str) -> Iterator[None]:
    """Tells ``cache`` every ``BEAT_S`` that this process is still building ``key``."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(BEAT_S):
            cache.beat.remote(key)

    thread = threading.Thread(target=beat, name=f"feature-build-{key}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def build_task(cfg: RunConfig, prepared: dict[str, Any], cache: Any | None = None) -> Task:
    """The task for this run, with its features from ``cache`` when another trial built them."""
    cls = get_task(cfg.task)
    if cache is None:
        return cls(cfg, prepared)
    import ray

    key = feature_key(cfg, prepared)
    try:
        outcome, features = ray.get(cache.claim.remote(key))
    except ray.exceptions.RayActorError:  # the cache is an optimisation: without it, build here
        return cls(cfg, prepared)
    if outcome == "hit":
        return cls(cfg, prepared, features)
    try:
        with beating(cache, key):  # also while the features are serialised and sent
            task = cls(cfg, prepared)
            with suppress(ray.exceptions.RayActorError):
                ray.get(cache.put.remote(key, task.features()))
    except BaseException:
        with suppress(ray.exceptions.RayActorError):
            ray.get(cache.abandon.remote(key))
        raise
    return task
