"""What an operating point is: a :class:`Build` (what is trained and encoded) searched at a
:class:`Setting` (nprobe, re-rank depth and store), and the training sample each build needs.

Names follow FAISS's factory strings, so a label printed here is what ``index_factory`` takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .kmeans import MAX_POINTS_PER_CENTROID
from .opq import OPQ_MAX_TRAIN

#: training points of the sq8 re-rank store's ranges (FAISS trains its refine SQ on the training
#: set; a fixed size keeps the store the same whatever else a sweep trains)
STORE_TRAIN = 256 * 256


@dataclass(frozen=True, order=True)
class Build:
    """What is trained and encoded: one index."""

    nlist: int
    m: int
    nbits: int = 8
    opq: bool = False

    @property
    def label(self) -> str:
        """FAISS's factory spelling, e.g. ``OPQ16,IVF1024,PQ16x4``."""
        pq = f"PQ{self.m}" + (f"x{self.nbits}" if self.nbits != 8 else "")
        return (f"OPQ{self.m}," if self.opq else "") + f"IVF{self.nlist},{pq}"


@dataclass(frozen=True, order=True)
class Setting:
    """How a build is searched: nprobe, re-rank depth (0 = none) and the store it reads."""

    nprobe: int
    rerank: int = 0
    store: str = ""  # "" when rerank is 0

    @property
    def label(self) -> str:
        return f"nprobe={self.nprobe}" + (f", rerank {self.rerank} ({self.store})" if self.rerank else "")


def train_sizes(n_base: int, build: Build) -> tuple[int, int, int]:
    """FAISS's training sample caps: (coarse, PQ, OPQ) points for ``build`` over n_base vectors."""
    n_coarse = min(n_base, MAX_POINTS_PER_CENTROID * build.nlist)
    n_pq = min(n_base, MAX_POINTS_PER_CENTROID * (1 << build.nbits))
    n_opq = min(n_base, OPQ_MAX_TRAIN) if build.opq else 0
    return n_coarse, n_pq, n_opq


def sample_size(n_base: int, builds: Sequence[Build]) -> int:
    """Points the nested training sample needs for every build and the re-rank store."""
    return max([min(n_base, STORE_TRAIN)] + [max(train_sizes(n_base, b)) for b in builds])
