"""What the engine makes and measures: a build trained and filled (:class:`Built`), its PQ ranking
at every nprobe (:class:`Curve`), and one operating point with its recall, memory bill and
speed (:class:`PointResult`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .memory import MemoryBill
from .metrics import Recall
from .settings import Build, Setting
from .timing import Runs

if TYPE_CHECKING:
    from .cluster import ShardedIndex
    from .ivf import IVFPQIndex


@dataclass
class Built:
    """A trained, filled index and what it cost."""

    build: Build
    index: IVFPQIndex | ShardedIndex  # sharded: its lists held by the shards' tasks
    coarse_s: float  # the coarse stage's training time (shared by every build of its nlist)
    train_s: float  # PQ (and table) training of this build alone
    add_s: float
    shared_coarse: bool  # the coarse stage was trained for an earlier build
    cached: str | None = None  # what was read from --cache instead of computed (times then 0)


@dataclass
class Curve:
    """One scan of a build at its largest nprobe, read at every nprobe asked.

    ranked[p]: (nq, depth) int64 ids on the backend, the PQ ranking at nprobe p (best first,
    -1 past the candidates); scanned[p]: (nq,) int64 codes scanned per query at nprobe p.
    """

    depth: int
    ranked: dict[int, Any]
    scanned: dict[int, np.ndarray]


@dataclass
class PointResult:
    """One operating point, measured."""

    build: Build
    setting: Setting
    recall: Recall  # of what the point returns (re-ranked when it re-ranks)
    recall_raw: Recall  # the PQ ranking alone at this nprobe
    memory: MemoryBill
    scanned_per_query: float
    scanned_fraction: float
    queries_per_s: float | None = None  # None: not timed
    runs: Runs | None = None

    @property
    def memory_bytes(self) -> int:
        """What the point needs in memory: the index, plus the re-rank store when it re-ranks."""
        return self.memory.with_rerank if self.setting.rerank else self.memory.index_in_memory

    def to_dict(self) -> dict[str, Any]:
        return {
            "build": self.build.label,
            "nlist": self.build.nlist,
            "m": self.build.m,
            "nbits": self.build.nbits,
            "opq": self.build.opq,
            "nprobe": self.setting.nprobe,
            "rerank": self.setting.rerank,
            "rerank_store": self.setting.store or None,
            "recall": self.recall.to_dict(),
            "recall_raw": self.recall_raw.to_dict(),
            "memory_bytes": self.memory_bytes,
            "memory": self.memory.to_dict(),
            "vectors_scanned_per_query": self.scanned_per_query,
            "vectors_scanned_fraction": self.scanned_fraction,
            "queries_per_s": self.queries_per_s,
            "timed_runs": self.runs.to_dict() if self.runs else None,
            **({"modelled_queries_per_s": self.modelled_queries_per_s} if self.modelled_queries_per_s else {}),
        }

    @property
    def modelled_queries_per_s(self) -> float | None:
        """In shards: queries/s as deployed with one machine per shard (:mod:`gpupq.timing`)."""
        t = self.runs.modelled_median if self.runs is not None else None
        if t is None or self.queries_per_s is None:
            return None
        return self.queries_per_s * self.runs.median / t if t > 0 else float("inf")
