"""The recommender's space: the builds an expert would weigh by default, which of them an engine
serves, and every candidate (build × re-rank store) billed on that engine at the deployed size.

The default space is wider than the sweep's (whose grid is walked point by point): every m
dividing d, 4 to 8 bits a code, codes from :data:`MIN_CODE_BYTES` to d/2 bytes, nlist from √N to
16√N. The recommender does not walk it: :mod:`gpupq.frontier` bisects it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .engines import DEFAULT_ENGINE, engine_bill, table_skippable, unsupported
from .errors import GpupqError
from .grid import Grid
from .memory import Deployment, deployment, scaled_nlist, store_bytes
from .pq import valid_m
from .projection import scale
from .settings import Build

#: the smallest code the default space holds, in bytes: below it the 8-byte id of every vector
#: is most of the bill whatever the code
MIN_CODE_BYTES = 4
#: bits per code the default space holds (FAISS and cuVS both take 4 to 8)
SPACE_NBITS = (4, 5, 6, 7, 8)


@dataclass
class Candidate:
    """A build and a re-rank store ("" for none): what decides memory."""

    build: Build
    store: str
    memory_bytes: int  # at the deployment size, on the engine, without the precomputed table
    deploy: Deployment | None  # the bill at --n-total, None without it
    engine: str = DEFAULT_ENGINE
    table_bytes: int = 0  # what keeping FAISS's precomputed L2 table would add (0: none to keep)
    n_base: int = 0  # the sample's size, which --n-total is projected from

    @property
    def label(self) -> str:
        return self.build.label + (f" + {self.store} re-rank store" if self.store else "")

    def at(self, nprobe: int) -> Deployment | None:
        """The bill at --n-total with a point's nprobe scaled as nlist is (None without it)."""
        if self.deploy is None:
            return None
        _, scaled = scale(self.build.nlist, nprobe, self.n_base, self.deploy.n_total)
        return replace(self.deploy, nprobe=scaled)


def space_nlist(n_base: int) -> tuple[list[int], str]:
    """nlist of the recommender's space: powers of two from √N to 16√N, at most N/39 (FAISS warns
    below 39 training points a centroid) — wider than the sweep's 4√N–16√N, since the fewer,
    larger lists of √N often reach a target with a smaller code."""
    lo, hi = math.sqrt(n_base), 16 * math.sqrt(n_base)
    cap = max(1, n_base // 39)
    # from the power of two nearest √N
    values = [1 << e for e in range(0, 31) if lo / math.sqrt(2) <= (1 << e) <= hi and (1 << e) <= cap]
    if not values:
        values = [1 << int(math.log2(cap))]
    return values, f"nlist: powers of two from √N to 16√N (N={n_base:,}), at most N/39"


def space_codes(d: int) -> tuple[list[int], list[int], str]:
    """m and nbits of the recommender's space: every m dividing d, every nbits of
    :data:`SPACE_NBITS`, each pair whose code is :data:`MIN_CODE_BYTES` to d/2 bytes
    (:func:`in_code_range` keeps them)."""
    ms = [m for m in valid_m(d) if m >= MIN_CODE_BYTES]  # at 8 bits m bytes; at 4, d/2 bytes is m = d
    rule = (
        f"m × nbits: every m dividing d={d} with nbits {SPACE_NBITS[0]}–{SPACE_NBITS[-1]}, codes of "
        f"{MIN_CODE_BYTES} to d/2 bytes"
    )
    return ms, list(SPACE_NBITS), rule


def in_code_range(build: Build, d: int) -> bool:
    code = build.m * build.nbits / 8
    return MIN_CODE_BYTES <= code <= d / 2


def space_builds(grid: Grid, d: int, engine: str) -> tuple[list[Build], dict[str, int]]:
    """The grid's builds the engine can serve (and, for the default space, within its code
    range), and how many of the others were left out for what reason."""
    out, left = [], {}
    for b in grid.builds():
        if grid.code_range and not in_code_range(b, d):
            continue
        why = unsupported(engine, d, b.m, b.nbits, b.opq)
        if why:
            left[why] = left.get(why, 0) + 1
            continue
        out.append(b)
    if not out:
        raise GpupqError(f"{engine} serves none of the builds asked: {'; '.join(left)}")
    return out, left


def candidates(
    builds: list[Build], stores: list[str], n_base: int, n_total: int | None, d: int, metric: str, engine: str
) -> list[Candidate]:
    """Every build with every store ("" for none), billed on ``engine`` at the deployed size,
    without FAISS's precomputed table (its bytes are kept beside, for the deployer who wants
    the faster L2 search it buys)."""
    out = []
    n = n_total or n_base
    for build in builds:
        nlist = scaled_nlist(build.nlist, n_base, n) if n_total else build.nlist
        bill = engine_bill(engine, n, d, nlist, build.m, build.nbits, metric, build.opq)
        table = bill.table if table_skippable(engine) else 0
        for store in stores:
            dep = deployment(build, 1, store, n_base, n_total, d, metric) if n_total else None
            mem = bill.total(table=not table_skippable(engine)) + (store_bytes(store, n, d) if store else 0)
            out.append(Candidate(build, store, mem, dep, engine, table, n_base))
    return out
