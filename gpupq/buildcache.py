"""``--cache`` for builds: a sweep's or recommend's build (its trained quantizers and its lists)
kept on disk by what it depends on and read back instead of trained and filled again
(:mod:`gpupq.cache`). One pass here keeps the whole build; in shards, the quantizers are kept
here and each shard's lists by the task that encoded them (:func:`gpupq.cluster._lists_task`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .ivf import IVFPQIndex
from .points import Built
from .settings import Build

if TYPE_CHECKING:
    from .cache import StageCache
    from .io import Dataset, Split


def kept_shards(index: Any) -> str:
    """'3 of 8 shards' lists cached', or '' (none, or not in shards)."""
    n = getattr(index, "kept_shards", 0)
    return f"{n} of {len(index.handles)} shards' lists cached" if n else ""


class KeptBuilds:
    """The --cache side of :class:`gpupq.engine.Workbench` (a base of it): keys, reads, writes."""

    gt_cache: StageCache | None
    dataset: Dataset
    split: Split
    seed: int
    be: Any
    index_metric: str
    shard_plan: list[list[int]] | None
    shard_lists: Any
    train_in_shards: int

    def _untrained(self, build: Build) -> IVFPQIndex:
        raise NotImplementedError

    def build_key(self, build: Build) -> str | None:
        """The key of ``build`` as this workbench trains and fills it (see gpupq.cache)."""
        if self.gt_cache is None:
            return None
        parts = {
            "build": [build.nlist, build.m, build.nbits, build.opq], "metric": self.index_metric,
            "seed": self.seed, "backend": self.be.name, "shards": self.shard_plan,
            "training": "per-shard" if self.train_in_shards else "global",
        }  # fmt: skip
        return self.gt_cache.build_key(self.dataset, self.split.query_ids, parts)

    def keep(self, stage: str, key: str, state: dict[str, np.ndarray], index: IVFPQIndex, build: Build) -> None:
        assert self.gt_cache is not None
        state = {**state, "warnings": np.array(index.warnings, dtype=str)}
        about = {"stage": stage, "build": build.label, "data": self.dataset.source, "metric": self.index_metric}
        self.gt_cache.save_arrays(stage, key, state, about)

    def _kept(self, stage: str, key: str, names: tuple[str, ...], build: Build) -> IVFPQIndex | None:
        assert self.gt_cache is not None
        state = self.gt_cache.load_arrays(stage, key, names)
        if state is None:
            return None
        try:
            index = self._untrained(build).restore(state)
        except (ValueError, KeyError):
            return None  # not what this cache writes: computed again
        index.warnings = [str(w) for w in state.get("warnings", [])]
        return index

    def kept_build(self, build: Build, key: str) -> Built | None:
        """``build`` trained and filled, read from --cache (one pass here), or None."""
        index = self._kept("build", key, ("coarse", "codebooks", "codes", "ids", "list_sizes"), build)
        if index is None:
            return None
        where = str(self.gt_cache.path("build", key, ".npz")) if self.gt_cache is not None else ""
        return Built(build, index, 0.0, 0.0, 0.0, False, f"build cached: {where}")

    def kept_quantizers(self, build: Build, key: str) -> IVFPQIndex | None:
        """``build``'s trained quantizers read from --cache (their lists are the shards'), or None."""
        return self._kept("quantizers", key, ("coarse", "codebooks"), build) if self.shard_lists is not None else None
