"""One projection from the sample measured here to the collection deployed (``--n-total``).

Everything gpupq says about N_total follows one rule, :data:`RULE`: nlist grows as √N (FAISS's
guideline puts nlist at 4√N to 16√N, so its ratio to √N is kept) and nprobe grows with nlist, so
the share of lists probed, and with it the share of codes scanned, stays what was measured.
The memory bill, the deploy strings, the codes scanned per query, the projected throughput and
the scale curve's nested subsamples all use :func:`scale`; no report mixes two rules.
"""

from __future__ import annotations

import math

import numpy as np

RULE = (
    "nlist scaled by √(N / N_sample) (FAISS's guideline puts nlist at 4√N to 16√N, so its ratio to √N is kept); "
    "nprobe scaled with nlist, so the share of lists probed, and of codes scanned per query, is kept"
)


THROUGHPUT_NOTE = (
    "projected to N_total, not measured: gpupq's own scan timed here at two nprobe (seconds a query = fixed + "
    "per code scanned), the codes scanned at N_total by the rule above, plus the larger coarse search; "
    "within 0.6–1.7× of a direct measurement in a quarter-to-whole test (benchmarks/RESULTS.md); an engine's "
    "own speed differs"
)


def scale(nlist: int, nprobe: int, n_from: int, n_to: int) -> tuple[int, int]:
    """(nlist, nprobe) for n_to vectors of a configuration measured on n_from, by :data:`RULE`:
    nlist at least 1 and at most n_to; nprobe at least 1 and at most that nlist."""
    nl = int(max(1, min(n_to, round(nlist * math.sqrt(n_to / max(n_from, 1))))))
    return nl, int(max(1, min(nl, round(nprobe * nl / nlist))))


def scanned_at(scanned_per_query: float, n_from: int, n_to: int) -> float:
    """Codes scanned per query at n_to: the same share of the codes as measured on n_from."""
    return scanned_per_query * n_to / max(n_from, 1)


def fit_speed(timed: list[tuple[float, float]]) -> tuple[float, float]:
    """(fixed seconds a query, seconds a code scanned) by least squares through (codes scanned a
    query, seconds a query) pairs of one build at different nprobe; neither below 0. Costs that
    grow with the lists probed are counted per code (at N the lists are longer, so fewer lists a
    code); with timings this noisy that is within the projection's error."""
    if len({c for c, _ in timed}) < 2:
        c, t = timed[0]
        return 0.0, t / max(c, 1.0)  # one point: everything per code, the slow side
    x = np.array([c for c, _ in timed], dtype=np.float64)
    y = np.array([t for _, t in timed], dtype=np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    if slope <= 0:  # noise swamped the scan's cost: everything per code, the slow side
        i = int(np.argmax(x))
        return 0.0, float(y[i] / max(x[i], 1.0))
    if intercept < 0:
        return 0.0, float((x @ y) / (x @ x))
    return float(intercept), float(slope)


def projected_qps(
    fixed_s: float, per_code_s: float, scanned: float, n_from: int, n_to: int, nlist: int, d: int, rate: float
) -> float:
    """Queries per second at n_to: the fixed cost, each code scanned at n_to (:func:`scanned_at`)
    at the measured cost, and the coarse search's extra nlist·d multiply-adds a query at ``rate``
    (multiply-adds per second) as nlist grows by :func:`scale`."""
    nlist_to, _ = scale(nlist, 1, n_from, n_to)
    seconds = fixed_s + per_code_s * scanned_at(scanned, n_from, n_to) + max(0, nlist_to - nlist) * d / rate
    return 1.0 / seconds if seconds > 0 else float("inf")
