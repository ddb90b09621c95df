"""Timings to trust: each timed phase is run until its runs cover enough work to be stable, and
reported as the median run with the fastest and slowest beside it.

A single run of a short phase says more about the machine's other load than about the phase, and
two phases timed once each, one after the other, can come out in an order that their work makes
impossible (plain search slower than search + re-rank). Repeating each until its runs cover
``min_time`` seconds, interleaving phases that are compared, and taking the median fixes both.

Throughput (a batch of queries) is not what an online service is judged by: :class:`Latency` is
one query at a time, each run once, as percentiles.

Work run in shards (:mod:`gpupq.cluster`) is timed twice: the wall clock here, which includes
each shard's turn (one after another in this process) or Dask's round trips to the workers, and
the *modelled* time of a deployment with one machine per shard: the wall less what the executor
spent beyond the slowest shard of each call (its ``overhead``, a running total of seconds).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Each timed phase is repeated until its runs cover this many seconds (a phase whose one run
#: takes longer runs once).
MIN_TIMED_S = 0.5
#: ... but at most this many runs (a search of a few queries takes well under a millisecond).
MAX_RUNS = 100


@dataclass
class Runs:
    """The wall-clock seconds of each run of one timed phase."""

    seconds: list[float]
    #: work in shards: each run's seconds as deployed with one machine per shard (see the module)
    modelled: list[float] | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def modelled_median(self) -> float | None:
        return None if self.modelled is None else statistics.median(self.modelled)

    def to_dict(self) -> dict[str, float | int]:
        seconds = self.seconds
        out = {"runs": len(seconds), "median_s": self.median, "min_s": min(seconds), "max_s": max(seconds)}
        if self.modelled is not None:
            out["modelled_median_s"] = statistics.median(self.modelled)
        return out


#: queries timed one at a time for a latency figure: p99 of 200 is the second slowest
LATENCY_QUERIES = 200


@dataclass
class Latency:
    """Seconds one query takes alone (batch 1), over ``queries`` queries each run once: the
    percentiles an online service is judged by. p99 of a hundred queries is close to the slowest."""

    p50: float
    p95: float
    p99: float
    queries: int
    #: work in shards: the same queries' latency as deployed with one machine per shard
    modelled: Latency | None = None

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        ordered = sorted(seconds)

        def pct(q: float) -> float:  # nearest rank: a time some query really took
            return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

        return cls(pct(0.50), pct(0.95), pct(0.99), len(ordered))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"p50_s": self.p50, "p95_s": self.p95, "p99_s": self.p99, "queries": self.queries}
        if self.modelled is not None:
            out["modelled"] = self.modelled.to_dict()
        return out


def one_at_a_time(
    search: Callable[[int], object],
    n: int,
    sync: Callable[[], None] | None = None,
    overhead: Callable[[], float] | None = None,
) -> Latency:
    """:class:`Latency` of ``search(i)`` for i in range(n), each timed alone (device synchronised
    before each clock read), after one untimed warm-up call. overhead: the shards' executor's
    running total (see the module); with it, the modelled latency too."""
    search(0)
    if sync is not None:
        sync()
    seconds, modelled = [], []
    for i in range(n):
        o0 = overhead() if overhead is not None else 0.0
        t0 = time.perf_counter()
        search(i)
        if sync is not None:
            sync()
        seconds.append(time.perf_counter() - t0)
        if overhead is not None:
            modelled.append(max(0.0, seconds[-1] - (overhead() - o0)))
    out = Latency.of(seconds)
    if overhead is not None:
        out.modelled = Latency.of(modelled)
    return out


def repeat(
    fns: dict[str, Callable[[], Any]],
    min_time: float,
    synchronize: Callable[[], None] = lambda: None,
    overhead: Callable[[], float] | None = None,
) -> tuple[dict[str, Any], dict[str, Runs]]:
    """Time each function in runs interleaved with the others (drifting machine load hits all
    alike) until its runs cover ``min_time`` seconds or :data:`MAX_RUNS` runs, at least once.
    overhead: the shards' executor's running total (see the module): with it, each run's
    modelled seconds too.

    Returns the result of each function's first run, and its runs. ``synchronize`` (a GPU
    backend's) is called before each clock read, so queued work is inside the run that queued it.
    """
    results: dict[str, Any] = {}
    times: dict[str, list[float]] = {name: [] for name in fns}
    modelled: dict[str, list[float]] = {name: [] for name in fns}
    while True:
        pending = [n for n in fns if not times[n] or (sum(times[n]) < min_time and len(times[n]) < MAX_RUNS)]
        if not pending:
            break
        for name in pending:
            synchronize()
            o0 = overhead() if overhead is not None else 0.0
            t0 = time.perf_counter()
            out = fns[name]()
            synchronize()
            times[name].append(time.perf_counter() - t0)
            if overhead is not None:
                modelled[name].append(max(0.0, times[name][-1] - (overhead() - o0)))
            results.setdefault(name, out)
    return results, {name: Runs(t, modelled[name] if overhead is not None else None) for name, t in times.items()}
