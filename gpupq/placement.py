"""The memory planner for lists held in shards: what each shard's lists cost, where they go, and a
refusal with the numbers when they do not fit.

A shard's lists, once built, hold (:class:`gpupq.ivf.IVFPQIndex`, as gpupq stores them):

- codes rows·m bytes (a byte a sub-quantizer, whatever nbits), ids rows·8 (int64), and for L2
  the query-independent term of each stored vector rows·4 (float32: the scan's precomputed
  table, :meth:`~gpupq.ivf.IVFPQIndex._base_terms`);
- list offsets (nlist + 1)·8 and sizes nlist·8;
- the trained quantizers (centroids nlist·d·4, codebooks 2^nbits·d·4, an OPQ rotation d·d·4),
  one copy a worker a build (it is lent to every worker once).

Encoding a shard holds more for a moment: the chunks added so far (labels, codes, ids), their
concatenation, the sort into lists and the sorted copies, at most ``max(56 + 2m, 40 + 3m) + 8``
bytes a row (:func:`build_bytes_per_row`); before that, adding a chunk holds its rows, their
residuals and their labels (:func:`add_chunk_bytes`). The bill is tested against the arrays of
a built shard, byte for byte, and the peak against numpy's own allocations (tracemalloc); a
process adds its interpreter and libraries, which the benchmark measures (peak RSS).

A worker runs as many tasks at once as it has threads (one, as gpupq starts them), so its peak
is what its shards hold plus the transients of that many of them, the largest. Shards are
placed largest first on the worker with the most room; a shard that fits nowhere, or a total
past the workers' limits, is refused before any encoding starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import GpupqError
from .io.dataset import chunk_rows
from .units import human_bytes

if TYPE_CHECKING:
    from .ivf import IVFPQIndex

#: the assignment's block of scores (NumpyBackend.block_bytes: 16 MiB on a CPU)
BLOCK_BYTES = 16 << 20


def add_chunk_bytes(rows: int, d: int, m: int) -> int:
    """Bytes while one chunk of ``rows`` is encoded: the rows read (a copy: 4d a row), their
    residuals (4d), the coarse labels (8), the sub-quantizers' labels and best scores (12m) and
    their bytes (m), and the assignment's block of scores."""
    return rows * (8 * d + 13 * m + 8) + BLOCK_BYTES


def available_memory() -> int:
    """Bytes this host can give without swapping: MemAvailable (free pages plus the page cache the
    kernel can drop, such as the input files just read), else the free pages alone."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def build_bytes_per_row(m: int) -> int:
    """Bytes a row at the height of :meth:`gpupq.ivf.IVFPQIndex.build`: the pending chunks
    (labels 8, codes m, ids 8), all labels 8, the order 8, the sorted labels 8, then either
    the codes' concatenation and sorted copy (2m) or, after it, the sorted codes (m) and the
    ids' concatenation and sorted copy (16); and the stable sort's merge buffer (8)."""
    return max(56 + 2 * m, 40 + 3 * m) + 8


@dataclass(frozen=True)
class ShardMemory:
    """Bytes of one shard's lists: ``resident`` while the build lives, ``peak`` while encoding
    (transient buffers included)."""

    rows: int
    resident: int
    peak: int
    #: bytes of the shard's rows in a memory-mapped input file: the pages a task reads stay
    #: mapped while the input is open, counted in the process's RSS (Dask's memory monitor counts
    #: them) though the kernel can drop them (clean page cache): reported, not refused on
    mapped: int = 0

    @property
    def transient(self) -> int:
        return self.peak - self.resident


def quantizer_bytes(template: IVFPQIndex) -> int:
    """The trained quantizers a worker keeps for a build: centroids nlist·d·4, codebooks
    2^nbits·d·4, an OPQ rotation d·d·4 (from the parameters: ``template`` may be untrained)."""
    d = template.d
    return 4 * d * (template.nlist + template.pq.ksub + (d if template.opq is not None else 0))


#: inputs read through np.memmap (their pages stay mapped: ShardMemory.mapped)
MAPPED_FORMATS = frozenset({"npy", "fvecs", "ivecs", "bvecs", "fbin", "u8bin", "i8bin", "ibin"})


def shard_memory(rows: int, template: IVFPQIndex, row_bytes: int = 0, own: bool = False) -> ShardMemory:
    """The bill of a shard of ``rows`` vectors encoded with ``template``'s quantizers: the peak
    is the larger of adding its last chunk (everything added before it is pending, 16 + m bytes
    a row) and building its lists. row_bytes: a row's bytes in a memory-mapped input, else 0.
    own: the shard trains its own quantizers (kept with its lists; training holds its sample,
    d·4 bytes a point, and the assignment's block of scores)."""
    m, nlist, d = template.pq.m, template.nlist, template.d
    per_row = m + 8 + (4 if template.metric == "l2" else 0)
    lists = (nlist + 1) * 8 + nlist * 8
    resident = rows * per_row + lists
    # chunks are full but the last: the peak is at the last full one or the last one
    chunk = chunk_rows(d)
    full, last = divmod(rows, chunk)
    adding = max(
        (full - 1) * chunk * (16 + m) + add_chunk_bytes(chunk, d, m) if full else 0,
        full * chunk * (16 + m) + add_chunk_bytes(last, d, m) if last else 0,
    )
    building = rows * build_bytes_per_row(m) + lists
    if own:
        from .settings import Build, train_sizes

        build = Build(nlist, m, template.pq.nbits, template.opq is not None)
        sample = max(train_sizes(rows, build)) * d * 4
        quantizers = quantizer_bytes(template)
        resident += quantizers
        adding = max(adding, sample + BLOCK_BYTES) + quantizers
        building += quantizers
    return ShardMemory(rows, resident, max(adding, building, resident), rows * row_bytes)


@dataclass
class Worker:
    """A place shards can go: its name (a Dask address, or ``here``), the bytes it may use, the
    bytes already held there (its process, builds still alive), and how many tasks it runs at
    once (a Dask worker's threads; this process's thread budget)."""

    name: str
    limit: int
    held: int = 0
    slots: int = 1
    shards: list[int] = field(default_factory=list)
    resident: int = 0
    transients: list[int] = field(default_factory=list)
    mapped: int = 0  # input pages its shards read (ShardMemory.mapped)

    @property
    def transient(self) -> int:
        """The most its tasks hold beyond their shards at once: its ``slots`` largest."""
        return sum(sorted(self.transients)[-self.slots :]) if self.transients else 0

    @property
    def free(self) -> int:
        return self.limit - self.held - self.resident

    @property
    def peak(self) -> int:
        return self.held + self.resident + self.transient

    @property
    def peak_rss(self) -> int:
        """The peak as the process's RSS shows it: with the input pages its shards mapped."""
        return self.peak + self.mapped


@dataclass
class Placement:
    """Which worker each shard goes to, and each worker's predicted bytes."""

    where: list[str]  # a worker name for each shard, in plan order
    workers: list[Worker]
    quantizers: int
    what: str  # the build placed

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "worker": w.name,
                "shards": len(w.shards),
                "limit_bytes": w.limit,
                "held_bytes": w.held,  # its process, other builds, this build's quantizers
                "resident_bytes": w.resident,
                "predicted_peak_bytes": w.peak,
                "input_mapped_bytes": w.mapped,
                "predicted_peak_rss_bytes": w.peak_rss,
            }
            for w in self.workers
        ]


def place(shards: Sequence[ShardMemory], workers: Sequence[Worker], quantizers: int, what: str) -> Placement:
    """Put each shard on a worker, largest first on the one with the most room left, or refuse
    (GpupqError) with the numbers when a shard fits on none. Each worker also takes one copy of
    the quantizers (``quantizers`` bytes). what: the build, for the message."""
    pool = [Worker(w.name, w.limit, w.held + quantizers, w.slots) for w in workers]
    where = [""] * len(shards)
    for i in sorted(range(len(shards)), key=lambda i: -shards[i].resident):
        s = shards[i]
        best = max(pool, key=lambda w, s=s: _room(w, s))
        if _room(best, s) < 0:
            raise GpupqError(_refusal(shards, pool, quantizers, what))
        best.shards.append(i)
        best.resident += s.resident
        best.transients.append(s.transient)
        best.mapped += s.mapped
        where[i] = best.name
    return Placement(where, pool, quantizers, what)


def _room(w: Worker, s: ShardMemory) -> int:
    """What ``w`` would have left at its peak with ``s`` on it too."""
    with_s = sum(sorted([*w.transients, s.transient])[-w.slots :])
    return w.limit - (w.held + w.resident + s.resident + with_s)


def _refusal(shards: Sequence[ShardMemory], pool: Sequence[Worker], quantizers: int, what: str) -> str:
    total = sum(s.resident for s in shards)
    largest = max(shards, key=lambda s: s.peak)
    limits = sum(w.limit for w in pool)
    held = sum(w.held for w in pool) - quantizers * len(pool)
    room = max(w.limit - w.held for w in pool)
    n = len(pool)
    advice = (
        "a smaller --shard-rows (the largest shard's encoding fits no worker)"
        if largest.peak > room and total + len(pool) * quantizers + held <= limits
        else "more workers, or workers with more memory"
    )
    return (
        f"the lists of {what} do not fit: {len(shards)} shards hold {human_bytes(total)} "
        f"(the largest {largest.rows:,} rows: {human_bytes(largest.resident)}, "
        f"{human_bytes(largest.peak)} while encoding) plus {human_bytes(quantizers)} of quantizers a worker; "
        f"{n} worker{'s' if n != 1 else ''} may use {human_bytes(limits)}"
        + (f", {human_bytes(held)} of it held by other builds" if held > 0 else "")
        + f", at most {human_bytes(max(room, 0))} on one; use {advice}"
    )
