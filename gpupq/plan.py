"""What a sweep or a recommendation is about to do, said before it starts: how many builds and
points, roughly how long, and whether its working memory fits.

- The time is a rough figure, stated as one: the arithmetic of each stage (ground truth, coarse
  and PQ k-means, encoding, the list scans) in multiply-adds, at the rate this machine's backend
  was just measured to do products, times :data:`ARITHMETIC_OVERHEAD` (what memory traffic, the
  argmins and selections add), plus each point's timing runs and each build's fixed cost. The
  constants were fitted on small sweeps (benchmarks/RESULTS.md, "The plan's time"); early stops
  move the real figure either way, and the finished report gives the real wall time.
- A grid of more than :data:`MAX_BUILDS` builds runs only when asked twice (``--yes``): a typo in
  a range (``--m 1-384``) should not start hours of work without a word.
- Work whose candidate lists cannot fit in memory is refused before it starts, with the numbers:
  every query keeps ``depth`` candidates (8-byte ids) for each nprobe read from one scan, plus
  their scores.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .backends import Backend
from .errors import GpupqError
from .kmeans import MAX_POINTS_PER_CENTROID
from .settings import Build, train_sizes
from .threads import blas_threads
from .units import format_bytes, format_count

#: a grid of more builds than this needs --yes
MAX_BUILDS = 64
#: the share of free memory the candidate lists may take
MEMORY_SHARE = 0.5
#: k-means iterations (FAISS's): coarse, PQ
_COARSE_ITER, _PQ_ITER = 10, 25
#: wall time over the products' time at the measured rate, and seconds a point and a build cost
#: beyond their arithmetic (fitted on three sweeps: benchmarks/RESULTS.md, "The plan's time")
ARITHMETIC_OVERHEAD = 3.0
POINT_OVERHEAD_S = 0.01
BUILD_OVERHEAD_S = 0.3


@dataclass
class Plan:
    """The work ahead: builds, coarse quantizers (shared per nlist), points (None: decided as it
    goes, by the nprobe rule), multiply-adds, the measured rate and the time they suggest, and
    the candidate lists' bytes against the memory free."""

    builds: int
    coarse: int
    points: int | None
    multiply_adds: float
    rate: float  # multiply-adds per second, measured here
    timing_s: float  # seconds of the points' timing runs and fixed costs
    candidate_bytes: int
    free_bytes: int
    notes: list[str] = field(default_factory=list)
    bound: str = "roughly"  # "at most": a search that may stop early (recommend)
    max_builds: int | None = None  # more builds than this need --yes (None: MAX_BUILDS)

    @property
    def seconds(self) -> float:
        return ARITHMETIC_OVERHEAD * self.multiply_adds / self.rate + self.timing_s + BUILD_OVERHEAD_S * self.builds

    def describe(self) -> str:
        points = f"{self.points:,} points" if self.points is not None else "points as the nprobe rule finds them"
        return (
            f"plan: {self.builds:,} build{'s' if self.builds != 1 else ''} ({self.coarse:,} coarse quantizer"
            f"{'s' if self.coarse != 1 else ''}, shared per nlist), {points}; {self.bound} {_duration(self.seconds)} "
            f"({format_count(self.multiply_adds)} multiply-adds at the {format_count(self.rate)}/s measured here, "
            "with what memory traffic and each point cost on other sweeps; the report gives the real time)"
        )

    def check(self, yes: bool) -> None:
        """Refuse, with the numbers, what does not fit in memory, and a large grid not confirmed."""
        _check_fits(self.candidate_bytes, self.free_bytes, self.notes)
        if self.builds > (MAX_BUILDS if self.max_builds is None else self.max_builds) and not yes:
            raise GpupqError(
                f"this grid has {self.builds:,} builds ({self.bound} {_duration(self.seconds)}); give --yes to run it, "
                f"or narrow --m, --nlist, --nbits or --opq (more than {MAX_BUILDS} builds need --yes)"
            )


def candidate_bytes(nq: int, depth: int, widest: int) -> int:
    """Bytes of one build's candidate lists: per nprobe read from one scan (``widest`` of them),
    (nq, depth) int64 ids; and their exact scores and ids for re-ranking."""
    return nq * depth * (8 * widest + 4 + 8)


def check_memory(be: Backend, nq: int, depth: int, widest: int) -> None:
    """Refuse, before any work, candidate lists that would not fit in the backend's free memory."""
    need = candidate_bytes(nq, depth, widest)
    _check_fits(need, be.free_memory(), [f"{nq:,} queries × {depth:,} candidates × {widest} nprobe values"])


def _check_fits(need: int, free: int, notes: list[str]) -> None:
    if need > MEMORY_SHARE * free:
        raise GpupqError(
            f"the candidate lists need about {format_bytes(need)} ({'; '.join(notes)}) but "
            f"{format_bytes(free)} of memory is free; lower --queries or the re-rank depth (--rerank)"
        )


def widest_curve(builds: Sequence[Build], nprobes: Sequence[int] | None, first_scan: int) -> int:
    """The most nprobe values one scan is read at: those asked, or the doubling rule's first scan
    (1, 2, 4, … up to ``first_scan``)."""
    widest = 1
    for b in builds:
        if nprobes is not None:
            n = len({min(p, b.nlist) for p in nprobes})
        else:
            n = len(_doublings(min(first_scan, b.nlist)))
        widest = max(widest, n)
    return widest


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def measured_rate(be: Backend, seconds: float = 0.05) -> float:
    """Multiply-adds per second of this backend's products, measured now on a product the size
    of a k-means block, one BLAS thread per thread of the budget."""
    rng = np.random.default_rng(0)
    a = be.asarray(rng.standard_normal((512, 128), dtype=np.float32))
    b = be.asarray(rng.standard_normal((128, 1024), dtype=np.float32))
    with blas_threads(1):
        be.xp.matmul(a, b)  # warm
        be.synchronize()
        runs, t0 = 0, time.perf_counter()
        while True:
            be.xp.matmul(a, b)
            runs += 1
            be.synchronize()
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
    rate = runs * 512 * 128 * 1024 / elapsed
    # on the host every thread of the budget runs such products side by side; a GPU is one device
    return rate * be.threads if be.xp is np else rate


def plan_work(
    be: Backend,
    builds: Sequence[Build],
    n_base: int,
    nq: int,
    d: int,
    depth: int,
    nprobes: Sequence[int] | None,
    points: int | None,
    min_time: float,
    widest: int,
    ground_truth: bool = True,
    settings: int = 1,
) -> Plan:
    """The plan of measuring ``builds`` over n_base vectors of d dimensions with nq queries, each
    ranked to ``depth`` candidates at ``nprobes`` (None: a rule that may reach nlist), one scan
    read at up to ``widest`` nprobe values; ``settings``: points at each nprobe (re-rank depths and
    stores, and none)."""
    coarse = {(b.nlist, b.m if b.opq else 0) for b in builds}
    macs = 2.0 * nq * n_base * d if ground_truth else 0.0
    for nlist, _ in coarse:
        n_coarse = min(n_base, MAX_POINTS_PER_CENTROID * nlist)
        macs += _COARSE_ITER * n_coarse * nlist * d
    for b in builds:
        _, n_pq, _ = train_sizes(n_base, b)
        ksub = 1 << b.nbits
        macs += _PQ_ITER * n_pq * ksub * d  # m sub-spaces of d/m dimensions each
        macs += n_base * d * (b.nlist + ksub)  # encoding: the coarse and the PQ assignments
        top = min(b.nlist, max(nprobes) if nprobes else b.nlist)
        macs += nq * n_base * min(1.0, top / b.nlist) * d  # the scan, decoded codes against queries
    notes = [f"{nq:,} queries × {depth:,} candidates × {widest} nprobe values read from one scan"]
    return Plan(
        builds=len(builds),
        coarse=len(coarse),
        points=points,
        multiply_adds=macs,
        rate=measured_rate(be),
        timing_s=(points if points is not None else _points_guess(builds) * settings) * (min_time + POINT_OVERHEAD_S),
        candidate_bytes=candidate_bytes(nq, depth, widest),
        free_bytes=be.free_memory(),
        notes=notes,
    )


def _points_guess(builds: Sequence[Build]) -> int:
    """Points of a sweep whose nprobe values a rule decides: its first scan's and one more round."""
    return sum(len(_doublings(min(16, b.nlist))) + 1 for b in builds)


def _doublings(nlist: int) -> list[int]:
    out, p = [], 1
    while p < nlist:
        out.append(p)
        p *= 2
    return [*out, nlist]
