"""The whole dataset held on a GPU once, for the passes that read the base: the ground truth,
adding, and the fp32 re-rank store.

Without it each pass copies every chunk of the base from host memory again (three copies of N·d·4
bytes per estimate, each through a pageable staging buffer). A deployment holds its vectors where
it searches them, and a GPU workstation's card usually has room: the copy is made once, outside
every timed phase, when the dataset takes at most half the free device memory; otherwise the
passes read the host as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from .io import Split, chunk_rows
from .transfer import device_chunks

if TYPE_CHECKING:
    from .backends import Array, Backend


class ResidentBase:
    """data: (n, d) float32 on the device, row i the dataset's row i (held-out queries too)."""

    def __init__(self, be: Backend, split: Split, data: Array) -> None:
        self.be = be
        self.split = split
        self.data = data

    @classmethod
    def load(cls, be: Backend, split: Split) -> ResidentBase | None:
        """Copy the dataset to the device in chunks, or None: a CPU backend (its base is host
        memory already), too little room, or out of memory on the way."""
        if not be.resident_stores:
            return None
        n, d = split.dataset.n, split.dataset.d
        if n * d * 4 > be.free_memory() // 2:
            return None
        try:
            data = be.xp.empty((n, d), dtype=be.xp.float32)
            step = chunk_rows(d)
            for s in range(0, n, step):
                rows = np.ascontiguousarray(split.dataset.chunk(s, min(n, s + step)), dtype=np.float32)
                data[s : s + rows.shape[0]] = be.asarray(rows)
        except be.out_of_memory_errors():
            data = None
            be.release_memory()
            return None
        return cls(be, split, data)

    def iter_base(self, mark_queries: bool = False) -> Iterator[tuple[np.ndarray, Any]]:
        """:meth:`gpupq.io.Split.iter_base` over the resident rows: (ids (b,) int64 on the host,
        x (b, d) float32 on the device), the same chunks in the same order; held-out rows marked
        -1 (``mark_queries``) or dropped on the device."""
        return self.split.iter_base(mark_queries=mark_queries, read=lambda start, stop: self.data[start:stop])


def base_chunks(
    be: Backend, split: Split, resident: ResidentBase | None, mark_queries: bool = False
) -> Iterator[tuple[np.ndarray, Any]]:
    """The base's chunks as :meth:`gpupq.io.Split.iter_base` gives them, x on the backend: read
    from the resident copy when there is one, else through pinned, double-buffered copies
    (:mod:`gpupq.transfer`; as they are on a CPU)."""
    if resident is not None:
        return resident.iter_base(mark_queries)
    return device_chunks(be, split.iter_base(mark_queries=mark_queries))
