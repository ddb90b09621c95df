"""The thread budget: how many threads gpupq keeps busy on the host, and the BLAS it runs on.

numpy's BLAS starts one thread per core for every product, however small, and its threads spin
while they wait: beside a busy process they contend for the cores and a phase can take many
times longer (measured: k-means training 10x slower beside three busy processes on two cores).
So gpupq owns the budget: ``--threads N`` (default: the cores this process may use) is the most
threads it keeps busy. Independent pieces of work (blocks of points, groups of queries) run on a
pool of N threads, each calling a single-threaded BLAS (set through threadpoolctl): a thread
that loses its core to another process delays only the piece it holds, and the others take the
rest.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache, lru_cache
from typing import Any, TypeVar

from .errors import GpupqError

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None) -> int:
    """``--threads``: None means every core this process may use."""
    if threads is None:
        return available_cores()
    if threads < 1:
        raise GpupqError(f"--threads must be at least 1 (got {threads})")
    return threads


def _numpy_blas_info() -> dict[str, str | int | None] | None:
    from threadpoolctl import threadpool_info

    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    # Other libraries (faiss-cpu) may bring a BLAS of their own: report the one numpy uses.
    ours = [i for i in infos if "numpy" in str(i.get("filepath", ""))]
    return (ours or infos or [None])[0]


def blas_description() -> str:
    """numpy's BLAS, e.g. ``openblas 0.3.31 (SkylakeX kernel, pthreads)``."""
    info = _numpy_blas_info()
    if info is None:
        return "unknown (threadpoolctl found no BLAS)"
    parts = [str(v) for v in (info.get("architecture"), info.get("threading_layer")) if v]
    detail = f" ({parts[0]} kernel{', ' + parts[1] if len(parts) > 1 else ''})" if parts else ""
    return f"{info.get('internal_api')} {info.get('version')}{detail}"


@lru_cache(maxsize=1)
def _controller() -> Any:
    """One ThreadpoolController: it finds the loaded BLAS libraries once, so setting their
    threads per phase costs microseconds, not a scan of the process."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextmanager
def blas_threads(threads: int) -> Iterator[None]:
    """Run the block with every loaded BLAS limited to ``threads`` threads (restored after)."""
    with _controller().limit(limits=threads, user_api="blas"):
        yield


#: a map inside a map (a piece of work that maps again) runs in the calling worker
_inside = threading.local()


@cache
def _shared_pool(threads: int) -> ThreadPoolExecutor:
    """One pool per size for the whole process: its threads, and the per-thread buffers BLAS
    allocates on a thread's first product, outlive one estimate (a fresh pool per estimate
    paid that warm-up in its first phase)."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"gpupq{threads}")


class ThreadBudget:
    """Up to ``threads`` host threads for coarse-grained work: :meth:`map` runs independent
    pieces (blocks of points, groups of queries) on a pool, each with single-threaded BLAS, so
    at most ``threads`` threads are busy and a core lost to another process slows one worker,
    not every product (threads take the next piece when they are free). The pool of a given
    size is shared by every budget in the process and kept (idle threads cost nothing)."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """[fn(item) for item in items], on up to ``threads`` threads; results in order."""
        items = list(items)
        if self.threads <= 1 or len(items) <= 1 or getattr(_inside, "active", False):
            return [fn(item) for item in items]

        def run(item: T) -> R:
            _inside.active = True
            try:
                return fn(item)
            finally:
                _inside.active = False

        with blas_threads(1):
            return list(_shared_pool(self.threads).map(run, items))

    def close(self) -> None:
        """Nothing to release: the pool is the process's (kept for callers that close)."""
