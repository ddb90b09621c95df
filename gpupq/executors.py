"""Executors: where the shards' tasks run, in this process (:class:`InProcess`) or on a
``dask.distributed`` cluster (:class:`DaskExecutor`), with one interface (share, lend, place, on,
map, release), each task timed where it ran (:class:`ShardClock`). :mod:`gpupq.cluster` builds
the stages on them. Dask is imported only when a :class:`DaskExecutor` is made.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import GpupqError
from .placement import Placement, ShardMemory, Worker


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """fn(*args) and the seconds it took where it ran (a worker's clock, not the round trip)."""
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


class ShardClock:
    """What the shards' tasks took, by stage: each shard's seconds (summed over the stage's
    calls), and the running total of seconds the executor spent beyond the slowest shard of
    each call (shards run one after another here, Dask's round trips): the ``overhead`` that
    :func:`gpupq.timing.repeat` takes off the wall clock to model one machine per shard."""

    def __init__(self) -> None:
        self.overhead_s = 0.0
        self.stages: dict[str, np.ndarray] = {}  # stage -> (shards,) float64 seconds
        self.calls: dict[str, int] = {}

    def record(self, stage: str, wall_s: float, shard_s: Sequence[float]) -> None:
        """One call of ``stage`` that took ``wall_s`` here, whose shards took ``shard_s``."""
        times = np.asarray(shard_s, dtype=np.float64)
        before = self.stages.get(stage)
        self.stages[stage] = times if before is None or before.shape != times.shape else before + times
        self.calls[stage] = self.calls.get(stage, 0) + 1
        self.overhead_s += max(0.0, wall_s - float(times.max(initial=0.0)))

    def overhead(self) -> float:
        return self.overhead_s

    def describe(self) -> dict[str, Any]:
        """Per stage: its calls, and the slowest, median and fastest shard's seconds over them."""
        return {
            stage: {
                "calls": self.calls[stage],
                "slowest_shard_s": float(t.max()),
                "median_shard_s": float(np.median(t)),
                "fastest_shard_s": float(t.min()),
                "slowest_shard": int(t.argmax()) + 1,
            }
            for stage, t in self.stages.items()
            if t.size
        }


class InProcess:
    """Tasks run here (nothing to start, nothing imported), on up to ``threads`` host threads,
    each task single-threaded as on a Dask worker thread: results in order."""

    name = "in-process"

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self.clock = ShardClock()

    def workers(self, backend: str = "numpy") -> list[Worker]:
        """One place, this process: the memory available now (what it already holds is not);
        backend ``cupy``: the GPU's free memory."""
        from .placement import available_memory

        if backend == "cupy":
            return [Worker("here", _device_free())]
        return [Worker("here", available_memory(), slots=self.threads)]

    def hold(self, placement: Placement, shards: Sequence[ShardMemory], sign: int = 1) -> None:
        pass

    def share(self, value: Any) -> Any:
        return value

    def lend(self, value: Any) -> Any:
        return value

    def place(
        self,
        fn: Callable[..., Any],
        items: Sequence[Any],
        *args: Any,
        where: Sequence[str] | None = None,
        done: Callable[[int], None] | None = None,
    ) -> list[Any]:
        """[fn(item, *args) for item in items], kept where they were made (here: the results);
        ``done(i)`` as each finishes."""
        return self.map(fn, items, *args, done=done)

    def on(self, fn: Callable[..., Any], handles: Sequence[Any], *args: Any, stage: str | None = None) -> list[Any]:
        """[fn(value, *args) for each placed value], each run where its value is."""
        return self.map(fn, handles, *args, stage=stage)

    def release(self, handles: Sequence[Any]) -> None:
        pass

    def map(
        self,
        fn: Callable[..., Any],
        items: Sequence[Any],
        *args: Any,
        done: Callable[[int], None] | None = None,
        stage: str | None = None,
    ) -> list[Any]:
        """[fn(item, *args) for item in items]; ``done(i)`` after item i finishes (any order);
        each task's seconds recorded under ``stage`` in :attr:`clock` when given."""
        from .threads import ThreadBudget

        lock = threading.Lock()

        def run(i: int) -> Any:
            try:
                out = _timed(fn, items[i], *args)
            except GpupqError as exc:  # a refusal: which shard (a bug keeps its traceback)
                raise _task_error(i, items, exc) from None
            if done is not None:
                with lock:
                    done(i)
            return out

        t0 = time.perf_counter()
        parts = ThreadBudget(self.threads).map(run, range(len(items)))
        if stage is not None:
            self.clock.record(stage, time.perf_counter() - t0, [s for _, s in parts])
        return [out for out, _ in parts]

    def close(self) -> None:
        pass


#: seconds to wait for a scheduler named by --scheduler
CONNECT_TIMEOUT_S = 10
#: tries to send data to the workers when one of them has just gone away
SCATTER_TRIES = 4
#: seconds one scatter may take before it is tried again (one to a worker that just died can hang)
SCATTER_TIMEOUT_S = 20


class DaskExecutor:
    """Tasks on a ``dask.distributed`` cluster: a LocalCluster of ``workers`` (processes, or
    threads with ``processes=False``), or the scheduler at ``address``. Values shared by every
    task are scattered once (broadcast) and their futures held until the executor closes."""

    name = "dask"

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        processes: bool = True,
        threads_per_worker: int = 1,
        cuda: bool = False,
    ) -> None:
        try:
            from dask.distributed import Client
        except ImportError:
            raise GpupqError("Dask is not installed; pip install 'gpupq[distributed]'") from None
        self._cluster = None
        if address is not None:
            try:
                self.client = Client(address, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError, ValueError) as exc:
                raise GpupqError(f"--scheduler {address}: cannot reach it ({exc})") from None
        else:
            import dask

            # lists held for searches stay in memory: spilling them to disk would time the disk
            # (the planner refuses what does not fit instead); pausing and the nanny's limit stay
            # and the workers' own log lines (a task cancelled by Ctrl-C, a worker restarted) stay
            # out of the report: what matters reaches the user as one GpupqError line
            # (a worker process sets up its logging from the environment as it starts)
            quiet = {"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False}
            logging.getLogger("distributed").setLevel(logging.ERROR)
            env = os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
            try:
                with dask.config.set(quiet):
                    self._cluster = _local_cluster(workers or 1, threads_per_worker, processes, cuda)
            finally:
                if env == "error":
                    os.environ.pop("DASK_LOGGING__DISTRIBUTED", None)
            self.client = Client(self._cluster)
        self._held: list[Any] = []
        self.clock = ShardClock()
        # each worker's share of its process's RSS when the first lists were placed
        self._baseline: dict[str, int] = {}
        self._lists: dict[str, int] = {}  # bytes of the lists held on each worker (live builds)

    def workers(self, backend: str = "numpy") -> list[Worker]:
        """Each worker with its memory limit (the host's memory where it has none), and what it
        holds: its process at the first placement, and the lists of the builds alive on it.
        backend ``cupy``: the lists live in each worker's GPU: its free device memory instead."""
        info = self.client.scheduler_info().get("workers", {})
        if backend == "cupy":
            free = {a: self.client.submit(_device_free, workers=[a], pure=False) for a in info}
            got = dict(zip(free, self.client.gather(list(free.values())), strict=True))
            return [Worker(a, got[a] + self._lists.get(a, 0), self._lists.get(a, 0)) for a in sorted(info)]
        # as a task, on the thread tasks run on: BLAS keeps a buffer for each thread that calls it
        futures = {a: self.client.submit(_worker_memory, workers=[a], pure=False) for a in info}
        now = dict(zip(futures, self.client.gather(list(futures.values())), strict=True))
        # workers in one process (processes=False) share its RSS: each holds an equal part of one
        # reading, or each would count the whole, and a few kB read between their readings would
        # send every shard to whichever was read first
        first: dict[str, int] = {}
        sharing: dict[str, int] = {}
        for process, rss, _ in now.values():
            first.setdefault(process, rss)
            sharing[process] = sharing.get(process, 0) + 1
        out = []
        for addr, w in sorted(info.items()):
            process, _, available = now.get(addr, ("", 0, 0))
            base = self._baseline.setdefault(addr, first.get(process, 0) // sharing.get(process, 1))
            limit = int(w.get("memory_limit") or base + available // sharing.get(process, 1))
            out.append(Worker(addr, limit, base + self._lists.get(addr, 0), int(w.get("nthreads", 1))))
        return out

    def hold(self, placement: Placement, shards: Sequence[ShardMemory], sign: int = 1) -> None:
        """Count (sign 1) or stop counting (-1) a build's lists on the workers they were placed on."""
        for addr, s in zip(placement.where, shards, strict=True):
            self._lists[addr] = self._lists.get(addr, 0) + sign * s.resident
        for w in placement.workers:
            self._lists[w.name] = self._lists.get(w.name, 0) + sign * placement.quantizers

    def share(self, value: Any) -> Any:
        """``value`` on every worker, held until the executor closes (a run's constants)."""
        future = self._scatter(value, hash=True)
        self._held.append(future)
        return future

    def lend(self, value: Any) -> Any:
        """``value`` on every worker for one call (a search's queries): released when the caller
        drops the future. Its own key (hash=False): equal content scattered elsewhere, and held,
        is another key, so dropping this one never takes that one away."""
        return self._scatter(value, hash=False)

    def _scatter(self, value: Any, hash: bool) -> Any:
        """Broadcast (a copy on every worker survives the loss of one). A worker that died a
        moment ago closes the connection to it; the scheduler drops it soon after: try again."""
        from distributed.comm.core import CommClosedError

        for attempt in range(SCATTER_TRIES):
            try:
                return self.client.scatter(value, broadcast=True, hash=hash, timeout=SCATTER_TIMEOUT_S)
            # KeyError: the scheduler's replicate met the gone worker; a timeout: the scatter waited on it
            except (CommClosedError, OSError, KeyError, TimeoutError):
                if attempt == SCATTER_TRIES - 1:
                    raise GpupqError("could not send data to the Dask workers: they keep disconnecting") from None
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    def place(
        self,
        fn: Callable[..., Any],
        items: Sequence[Any],
        *args: Any,
        where: Sequence[str] | None = None,
        done: Callable[[int], None] | None = None,
    ) -> list[Any]:
        """fn(item, *args) for each item, run and kept on the workers: their futures, held.
        where: the worker for each item (the planner's); another takes it if that one is gone.
        ``done(i)`` as each finishes."""
        futures = [
            self.client.submit(
                fn, item, *args, pure=False,
                **({"workers": [where[i]], "allow_other_workers": True} if where is not None else {}),
            )
            for i, item in enumerate(items)
        ]  # fmt: skip
        self._as_done(futures, done)
        self._wait(futures, items)
        return futures

    @staticmethod
    def _as_done(futures: list[Any], done: Callable[[int], None] | None) -> None:
        """``done(i)`` for each future that finishes, as it does (errors are _wait's)."""
        if done is None:
            return
        from dask.distributed import as_completed

        where = {f.key: i for i, f in enumerate(futures)}
        for f in as_completed(futures):
            if f.status == "finished":
                done(where[f.key])

    def on(self, fn: Callable[..., Any], handles: Sequence[Any], *args: Any, stage: str | None = None) -> list[Any]:
        """fn(value, *args) for each placed value, on the worker holding it; the results here,
        each task's seconds recorded under ``stage`` in :attr:`clock` when given."""
        t0 = time.perf_counter()
        futures = [self.client.submit(_timed, fn, h, *args, pure=False) for h in handles]
        self._wait(futures, [f"placed {i + 1}" for i in range(len(handles))])
        return self._unpack(self.client.gather(futures), stage, t0)

    def _unpack(self, parts: list[tuple[Any, float]], stage: str | None, t0: float) -> list[Any]:
        if stage is not None:
            self.clock.record(stage, time.perf_counter() - t0, [s for _, s in parts])
        return [out for out, _ in parts]

    def release(self, handles: Sequence[Any]) -> None:
        self.client.cancel(list(handles))

    def _wait(self, futures: list[Any], items: Sequence[Any]) -> None:
        from dask.distributed import wait

        wait(futures)
        for i, f in enumerate(futures):
            if f.status == "error":
                raise _task_error(i, items, f.exception()) from None

    def map(
        self,
        fn: Callable[..., Any],
        items: Sequence[Any],
        *args: Any,
        done: Callable[[int], None] | None = None,
        stage: str | None = None,
    ) -> list[Any]:
        """[fn(item, *args) for item in items] on the workers; ``done(i)`` as each finishes. A
        task that fails (after the scheduler's allowed retries, for a worker that died) is one
        GpupqError naming its shard. Each task's seconds recorded under ``stage`` when given."""

        t0 = time.perf_counter()
        # pure=False: a task is not skipped for one of the same key computed earlier
        futures = [self.client.submit(_timed, fn, item, *args, pure=False) for item in items]
        self._as_done(futures, done)
        self._wait(futures, items)
        return self._unpack(self.client.gather(futures), stage, t0)

    def close(self) -> None:
        self._held.clear()
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _local_cluster(workers: int, threads: int, processes: bool, cuda: bool) -> Any:
    """A LocalCluster, or with ``cuda`` a dask-cuda LocalCUDACluster: one worker a GPU (each
    sees its own as device 0), ``workers`` of them."""
    if not cuda:
        from dask.distributed import LocalCluster

        # dashboard on a free port: never the default 8787 another cluster holds
        return LocalCluster(n_workers=workers, threads_per_worker=threads, processes=processes, dashboard_address=":0")
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        raise GpupqError("--gpu-workers needs dask-cuda: pip install dask-cuda (one Dask worker a GPU)") from None
    return LocalCUDACluster(n_workers=workers, threads_per_worker=threads, dashboard_address=":0")


def _device_free() -> int:
    """Free bytes of this process's GPU (CuPy's pool counted free): where its lists would go."""
    from .backends import CupyBackend

    return CupyBackend().free_memory()


#: with the pid, tells this process from every other on any host (a pid alone repeats across
#: hosts and containers; this token alone is shared by processes forked after the import)
_PROCESS = uuid.uuid4().hex


def _worker_memory() -> tuple[str, int, int]:
    """This process (:data:`_PROCESS` and its pid), its resident bytes and the host's available
    bytes (psutil: Dask's dependency), once what every task loads is loaded: gpupq's modules and
    BLAS's buffers (a first product)."""
    import psutil

    from . import ivf, knn  # noqa: F401  (their imports: numpy's and gpupq's compiled kernels)

    a = np.ones((64, 64), dtype=np.float32)
    a @ a

    rss, available = psutil.Process().memory_info().rss, psutil.virtual_memory().available
    return f"{_PROCESS}:{os.getpid()}", int(rss), int(available)


def _task_error(i: int, items: Sequence[Any], exc: BaseException) -> GpupqError:
    """One line for a failed task: which shard, what happened, what to change."""
    item = items[i]
    what = f"rows {item[0]:,}-{item[1]:,}" if isinstance(item, tuple) and len(item) == 2 else repr(item)
    where = f"shard {i + 1} of {len(items)} ({what})"
    if isinstance(exc, GpupqError):
        return GpupqError(f"{where}: {exc}")
    if type(exc).__name__ == "KilledWorker":
        return GpupqError(
            f"{where}: the worker running it died each time it was tried; give the workers more memory or use "
            "a smaller --shard-rows"
        )
    return GpupqError(f"{where}: {type(exc).__name__}: {exc}")
