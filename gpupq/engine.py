"""The engine under every command: stages built once per key, operating points read from shared work.

An operating point is a trained and filled index (a :class:`Build`: nlist, m, nbits, OPQ) searched
at one nprobe, optionally re-ranked to depth R from a store of some precision. Most of the work
behind many points is shared, and :class:`Workbench` builds each stage once per what it depends
on:

- the training sample: one nested sample (a smaller one is a prefix of a larger one), so every
  build trains on the same points as a separate estimate would;
- ground truth: once per query set, at the largest k asked (plus one, to see ties);
- the coarse quantizer: once per (nlist, OPQ rotation), with the random generator's state after
  it kept, so the PQ trained next is the one a separate estimate trains;
- PQ codebooks and codes: once per build; re-rank stores once per precision;
- nprobe: one scan at the largest nprobe keeps each probed list's best candidates by probe rank,
  and the search at any smaller nprobe p is the merge of the first p ranks (:meth:`IVFPQIndex.scan`);
- re-rank depth: the PQ ranking to depth R_max is scored exactly once per store, and depth R is
  the best k of the first R scores.

A derived point has exact recall but no time of its own; :meth:`Workbench.time_points` times a
point by running it as deployed (search at its nprobe, re-rank at its depth), so every
queries/s figure the tools report was measured at its own setting.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends import Backend
from .buildcache import KeptBuilds, kept_shards
from .cache import StageCache
from .cluster import ShardedIndex
from .io import Dataset, Split, chunk_rows
from .ivf import IVFPQIndex
from .knn import exact_knn
from .memory import memory_bill
from .metrics import GroundTruth, Recall
from .points import Built, Curve, PointResult
from .pq import PQ_NITER
from .refine import DeviceRows, RerankStore, Rows, best_of, rerank, shared_candidate_scores
from .resident import ResidentBase, base_chunks
from .settings import STORE_TRAIN, Build, Setting, train_sizes
from .timing import LATENCY_QUERIES, Latency, Runs, one_at_a_time, repeat

#: A draft build (recommend's first look at a costly build): its PQ trained on 64 points a
#: centroid for 10 iterations, where FAISS trains on 256 for 25. On 60,000 MiniLM embeddings its
#: recall@10 was 0.2 to 1.1 points below the faithful build's, for 4 to 7 times less training.
DRAFT_POINTS_PER_CENTROID = 64
DRAFT_NITER = 10

#: progress(phase, done, total): called as long phases advance (every command passes one)
Progress = Callable[[str, int, int], None]


def _coarse_key(build: Build | None) -> tuple[int, int]:
    """What a coarse quantizer depends on: nlist, and m under OPQ (the rotation is trained for m)."""
    assert build is not None
    return (build.nlist, build.m if build.opq else 0)


@dataclass
class Coarse:
    """A trained coarse quantizer (and OPQ rotation), and the generator's state after it."""

    index: IVFPQIndex
    rng: np.random.Generator
    train_s: float


@dataclass
class Workbench(KeptBuilds):
    """The stages of one backend over one split, each built once per key (see the module doc).

    dataset: rows read by id (the ground truth's tie check, re-rank fetches, the sample);
    metric: the dataset's (l2, ip or cosine; cosine rows are already normalised);
    stored_gt: (nq, >=k) base row numbers from the input file, or None to compute them.
    """

    be: Backend
    dataset: Dataset
    split: Split
    seed: int = 0
    batch_size: int = 1024
    min_time: float = 0.0
    progress: Progress | None = None
    stored_gt: np.ndarray | None = None
    #: each base vector's list (and each training point's) assigned once per coarse quantizer and
    #: shared by its builds, as the quantizer is: recommend sets it; a sweep leaves it off, so
    #: the add time it reports for a build is that build's whole add
    share_lists: bool = False
    #: when set, the exact neighbours come from it instead of one pass here (shards on an
    #: executor, :class:`gpupq.cluster.ShardedRun`): (queries (nq, d) float32, held-out row ids
    #: (nq,) int64, k, metric, progress(rows)) -> ids (nq, k) int64
    ground_truth_fn: Callable[..., np.ndarray] | None = None
    #: when set, every build's lists are encoded and searched in shards instead of here
    #: (:class:`gpupq.cluster.ShardedRun.lists`): (trained index, held-out row ids, (cache
    #: folder, key) or None, progress(rows)) -> ShardedIndex
    shard_lists: Callable[..., ShardedIndex] | None = None
    #: with shards: the executor's seconds beyond each call's slowest shard, a running total, so
    #: timed runs also give their modelled seconds (one machine per shard; :mod:`gpupq.timing`)
    overhead: Callable[[], float] | None = None
    #: ``--shard-training per-shard``: each shard's task trains its own quantizers, so nothing is
    #: trained here (a build's index is its parameters only) and each of the ``shards`` keeps a
    #: copy of the quantizers in the memory bill; 0 for one set of quantizers
    train_in_shards: int = 0
    #: with shards: the plan's row ranges, part of a build's --cache key
    shard_plan: list[list[int]] | None = None
    #: ``--cache``: the ground truth is read from it when there, and written to it when computed
    gt_cache: StageCache | None = None
    #: the cache entry the ground truth was read from, or None
    ground_truth_cached: str | None = field(default=None, init=False)
    # what the stages measured
    ground_truth_s: float | None = field(default=None, init=False)
    ground_truth_runs: Runs | None = field(default=None, init=False)
    # the stage caches, one entry per key (see the module docstring); not constructor arguments
    _sample: np.ndarray | None = field(default=None, init=False, repr=False)
    _gt_ids: np.ndarray | None = field(default=None, init=False, repr=False)
    _coarse: dict[tuple[int, int], Coarse] = field(default_factory=dict, init=False, repr=False)
    _built: dict[Build, Built] = field(default_factory=dict, init=False, repr=False)
    _drafts: dict[Build, Built] = field(default_factory=dict, init=False, repr=False)
    # coarse key -> the lists of the training sample's first rows, and of the base chunk by chunk
    _sample_lists: dict[tuple[int, int], Any] = field(default_factory=dict, init=False, repr=False)
    _base_lists: dict[tuple[int, int], list[Any]] = field(default_factory=dict, init=False, repr=False)
    _stores: dict[str, RerankStore] = field(default_factory=dict, init=False, repr=False)
    _resident: dict[str, DeviceRows] = field(default_factory=dict, init=False, repr=False)
    _on_device: list[ResidentBase | None] = field(default_factory=list, init=False, repr=False)  # [] untried
    _queries: Any = field(default=None, init=False, repr=False)

    @property
    def index_metric(self) -> str:
        return "l2" if self.dataset.metric == "l2" else "ip"

    @property
    def queries(self) -> Any:
        """(nq, d) float32 queries on the backend."""
        if self._queries is None:
            self._queries = self.be.asarray(self.split.queries)
        return self._queries

    def report(self, phase: str, done: int, total: int) -> None:
        """Progress of ``phase`` on this backend (``[numpy] train`` …), when a callback is set."""
        if self.progress is not None:
            self.progress(f"[{self.be.name}] {phase}", done, total)

    # ------------------------------------------------------------------ shared stages
    def use_sample(self, rows: np.ndarray, store: RerankStore | None = None) -> None:
        """Take training rows already read, (n, d) float32 the nested sample's first n (and a
        store fitted on them): estimate reads them once for every backend and FAISS."""
        self._sample = rows
        if store is not None:
            self._stores[store.kind] = store

    def sample(self, size: int) -> np.ndarray:
        """The first ``size`` rows of the nested training sample: (size, d) float32, host."""
        size = min(size, self.split.n_base)
        if self._sample is None or self._sample.shape[0] < size:
            ids = self.split.sample_base(size, self.seed + 1)
            self._sample = self.dataset.rows(ids)
        return self._sample[:size]

    def base_on_device(self) -> ResidentBase | None:
        """The dataset copied once to a GPU for the ground truth, adding and the fp32 store
        (:mod:`gpupq.resident`), or None: a CPU, no room, or the base read in shards elsewhere.
        The first call copies it: callers make it outside the timed runs."""
        if not self._on_device:
            sharded = self.shard_lists is not None or self.ground_truth_fn is not None
            self._on_device.append(None if sharded else ResidentBase.load(self.be, self.split))
        return self._on_device[0]

    def truth(self, k: int, k_max: int | None = None) -> GroundTruth:
        """Exact neighbours of the queries for recall@k, computed once at the largest k asked
        (k_max, default k) plus one, which tells whether the k-th is tied."""
        want = max(k, k_max or k) + 1
        self.base_on_device()  # the copy to a GPU, before any timed run
        if self._gt_ids is None or (self.stored_gt is None and self._gt_ids.shape[1] < min(want, self.split.n_base)):
            key = self._gt_cache_key() if self.stored_gt is None else None
            hit = self._gt_cache_hit(key, want) if key is not None else None
            if self.stored_gt is not None:
                self._gt_ids = self.stored_gt
            elif hit is not None:
                self._gt_ids = hit
            else:
                nb = self.split.n_base
                done = [0]

                def step(n: int) -> None:
                    done[0] += n
                    self.report("ground truth", min(done[0], nb), nb)

                def ground_truth() -> Any:
                    if self.ground_truth_fn is not None:
                        qs = np.ascontiguousarray(self.split.queries, dtype=np.float32)
                        # rows of every shard, held-out queries included: the bar ends at the dataset's n
                        total, seen = self.dataset.n, [0]

                        def shard_done(rows: int) -> None:
                            seen[0] += rows
                            self.report("ground truth (shards)", seen[0], total)

                        ids = self.split.query_ids
                        return self.ground_truth_fn(qs, ids, min(want, nb), self.index_metric, shard_done)

                    def attempt() -> Any:
                        it = base_chunks(self.be, self.split, self.base_on_device(), mark_queries=True)
                        return exact_knn(self.be, self.queries, it, min(want, nb), self.index_metric, step)[1]

                    return self.be.retrying(attempt, "ground truth")

                out, runs = repeat({"gt": ground_truth}, self.min_time, self.be.synchronize, self.overhead)
                self._gt_ids = self.be.to_numpy(out["gt"])
                self.ground_truth_runs = runs["gt"]
                self.ground_truth_s = runs["gt"].median
                if key is not None and self.gt_cache is not None:
                    about = {"stage": "ground truth", "data": self.dataset.source, "queries": self.split.n_queries,
                             "k": int(self._gt_ids.shape[1]), "metric": self.index_metric}  # fmt: skip
                    self.gt_cache.save("ground-truth", key, self._gt_ids, about)
        return GroundTruth(self.split.queries, self._gt_ids, k, self.index_metric, self.dataset.rows)

    def _gt_cache_key(self) -> str | None:
        if self.gt_cache is None:
            return None
        queries = np.asarray(self.split.queries, dtype=np.float32)
        return self.gt_cache.ground_truth_key(self.dataset, self.split.query_ids, queries, self.index_metric)

    def _gt_cache_hit(self, key: str, want: int) -> np.ndarray | None:
        """The cached ground truth when it holds the queries and at least ``want`` (or every
        base) neighbour each, else None."""
        assert self.gt_cache is not None
        hit = self.gt_cache.load("ground-truth", key)
        need = min(want, self.split.n_base)
        if hit is None or hit.ndim != 2 or hit.shape[0] != self.split.n_queries or hit.shape[1] < need:
            return None
        if hit.dtype.kind not in "iu" or (hit.size and (hit.min() < -1 or hit.max() >= self.dataset.n)):
            return None  # not what this cache writes: computed again
        self.ground_truth_cached = str(self.gt_cache.path("ground-truth", key))
        return hit.astype(np.int64, copy=False)

    def store(self, kind: str) -> RerankStore:
        if kind not in self._stores:
            self._stores[kind] = RerankStore(kind).fit(self.sample(STORE_TRAIN))
        return self._stores[kind]

    def coarse(self, build: Build) -> tuple[Coarse, bool]:
        """The coarse quantizer of ``build`` (and whether it was already trained). Keyed by nlist,
        and by m under OPQ, whose rotation (trained first) depends on m."""
        key = _coarse_key(build)
        if key in self._coarse:
            return self._coarse[key], True
        t0 = time.perf_counter()
        index, rng = self._train_coarse(build)
        self.be.synchronize()
        stage = Coarse(index=index, rng=rng, train_s=time.perf_counter() - t0)
        self._coarse[key] = stage
        return stage, False

    def _train_coarse(self, build: Build) -> tuple[IVFPQIndex, np.random.Generator]:
        """The first half of training ``build``: (OPQ rotation and) coarse quantizer, from the
        seed's generator; returns them and the generator in the state the PQ training starts from."""
        be = self.be
        n_coarse, _, n_opq = train_sizes(self.split.n_base, build)
        x = self.sample(max(n_coarse, n_opq))
        m = build.m if build.opq else 1  # the OPQ rotation is trained for m; the PQ is not trained here
        index = IVFPQIndex(be, self.dataset.d, build.nlist, m, 8, self.index_metric, build.opq)
        x_opq = be.asarray(x[:n_opq]) if build.opq else None

        def attempt() -> tuple[IVFPQIndex, np.random.Generator]:
            rng = np.random.default_rng(self.seed + 2)  # afresh: a retry trains the same
            return index.train_coarse(be.asarray(x[:n_coarse]), rng, x_opq), rng

        return be.retrying(attempt, "coarse training")

    def _untrained(self, build: Build) -> IVFPQIndex:
        """``build``'s parameters as an index, nothing trained (per-shard training's template)."""
        return IVFPQIndex(self.be, self.dataset.d, build.nlist, build.m, build.nbits, self.index_metric, build.opq)

    def _train_pq(self, build: Build, coarse: IVFPQIndex, rng: np.random.Generator, draft: bool = False) -> IVFPQIndex:
        """The second half: a new index of ``build`` sharing ``coarse``, its PQ trained from ``rng``
        (as FAISS trains it, or on a draft's smaller budget: :data:`DRAFT_POINTS_PER_CENTROID`)."""
        be = self.be
        _, n_pq, _ = train_sizes(self.split.n_base, build)
        index = IVFPQIndex(be, self.dataset.d, build.nlist, build.m, build.nbits, self.index_metric, build.opq)
        index.with_coarse(coarse)
        x_pq = be.asarray(self.sample(n_pq))
        if index.opq is not None:
            x_pq = index.opq.apply(x_pq)
        lists = None
        if self.share_lists:  # the sample is nested: a smaller one's lists are a prefix
            key = _coarse_key(build)
            known = self._sample_lists.get(key)
            if known is None or known.shape[0] < n_pq:
                known = self._sample_lists[key] = index.coarse_assign(x_pq)
            lists = known[:n_pq]
        # each attempt from a copy of the generator: a retry trains the same
        budget = (DRAFT_POINTS_PER_CENTROID, DRAFT_NITER) if draft else (256, PQ_NITER)
        return be.retrying(lambda: index.train_pq(x_pq, copy.deepcopy(rng), *budget, lists), "PQ training")

    def train_index(self, build: Build) -> IVFPQIndex:
        """``build`` trained from scratch, nothing cached or shared: what ``estimate`` times."""
        if self.train_in_shards:
            return self._untrained(build)
        coarse, rng = self._train_coarse(build)
        return self._train_pq(build, coarse, rng)

    def fill(
        self, index: IVFPQIndex, label: str = "", build: Build | None = None, key: str | None = None
    ) -> IVFPQIndex | ShardedIndex:
        """Empty ``index``'s lists and add the whole base, chunk by chunk, then build the lists.
        build: the build ``index`` is, whose lists are shared with the other builds of its coarse
        quantizer when :attr:`share_lists` is on. Returns the index to search: ``index``, or
        with :attr:`shard_lists` the shards' lists encoded with its quantizers. key: the build's
        --cache key, under which each shard's task reads or keeps its lists."""
        if self.shard_lists is not None:
            what, total, seen = f"add {label} (shards)".replace("  ", " "), self.dataset.n, [0]
            self.report(what, 0, total)

            def shard_done(rows: int) -> None:  # a shard's rows, held-out ones too: the bar ends at n
                seen[0] += rows
                self.report(what, seen[0], total)

            kept = (str(self.gt_cache.folder), key) if key is not None and self.gt_cache is not None else None
            return self.shard_lists(index, self.split.query_ids, kept, shard_done)
        shared = self._base_lists.setdefault(_coarse_key(build), []) if self.share_lists and build else None

        def attempt() -> None:
            index.reset()
            nb, done = self.split.n_base, 0
            for i, (ids, x) in enumerate(base_chunks(self.be, self.split, self.base_on_device())):
                x = self.be.asarray(x)
                if shared is not None and len(shared) == i:  # the first build of the quantizer
                    # int32 when it holds the lists: the cache is 4 bytes a vector
                    part = x if index.opq is None else index.opq.apply(x)
                    shared.append(index.coarse_assign(part).astype(self.be.xp.int32))
                index.add(x, self.be.asarray(ids), shared[i] if shared is not None else None)
                done += len(ids)
                self.report(f"add {label}".rstrip(), done, nb)
            index.build()

        self.be.retrying(attempt, "adding")
        return index

    def adopt(self, build: Build, index: IVFPQIndex | ShardedIndex, train_s: float, add_s: float) -> Built:
        """Take an index trained and filled elsewhere (by ``estimate``'s timed runs) as ``build``'s."""
        out = Built(build, index, 0.0, train_s, add_s, False)
        self._built[build] = out
        return out

    def built(self, build: Build, draft: bool = False) -> Built:
        """``build`` trained (sharing its coarse stage) and filled with the whole base; draft: its
        PQ trained on a draft's budget instead (:meth:`draft_pays`), kept apart from the build."""
        cache = self._drafts if draft else self._built
        if build in cache:
            return cache[build]
        key = None if draft else self.build_key(build)  # --cache: drafts are not kept
        if key is not None and self.shard_lists is None and (hit := self.kept_build(build, key)) is not None:
            cache[build] = hit
            return hit
        if self.train_in_shards:  # each shard trains its own, in its task: no draft, nothing shared
            t0 = time.perf_counter()
            filled = self.fill(self._untrained(build), build.label, build, key)
            train_s = float(filled.train_shard_s.max(initial=0.0))  # the slowest shard's, inside the add
            out = Built(build, filled, 0.0, train_s, time.perf_counter() - t0, False, kept_shards(filled) or None)
            cache[build] = out
            return out
        be = self.be
        label = build.label + (" (draft)" if draft else "")
        kept = self.kept_quantizers(build, key) if key is not None else None
        t0 = t1 = time.perf_counter()
        if kept is not None:
            index, coarse_s, shared = kept, 0.0, False
        else:
            coarse, shared = self.coarse(build)
            self.report(f"train {label}", 0, 1)
            t0 = time.perf_counter()
            # a copy of the generator: every build of this coarse stage starts its PQ from the same state
            index = self._train_pq(build, coarse.index, copy.deepcopy(coarse.rng), draft)
            be.synchronize()
            t1, coarse_s = time.perf_counter(), coarse.train_s
            self.report(f"train {label}", 1, 1)
            if key is not None and self.shard_lists is not None:  # the lists: kept by the shards
                self.keep("quantizers", key, index.state(lists=False), index, build)
        filled = self.fill(index, label, build, key)
        be.synchronize()
        cached = "; ".join(s for s in ("quantizers cached" if kept is not None else "", kept_shards(filled)) if s)
        out = Built(build, filled, coarse_s, t1 - t0, time.perf_counter() - t1, shared, cached or None)
        if key is not None and self.shard_lists is None:
            self.keep("build", key, index.state(), index, build)
        cache[build] = out
        return out

    def draft_pays(self, build: Build) -> bool:
        """Is a draft of ``build`` worth making before the build itself: does the faithful PQ
        training cost more than three times the draft's training and its pass over the base
        (k-means work counted as points assigned, per iteration)? True for 6- to 8-bit codes on a
        base of 60,000; false once the base outweighs the training sample, or for OPQ, whose
        rotation (shared by both) is most of the cost."""
        if build.opq:
            return False
        _, n_pq, _ = train_sizes(self.split.n_base, build)
        n_draft = min(n_pq, DRAFT_POINTS_PER_CENTROID << build.nbits)
        return PQ_NITER * n_pq > 3 * (DRAFT_NITER * n_draft + self.split.n_base)

    def has(self, build: Build) -> bool:
        """Is ``build`` trained and filled (without training it)?"""
        return build in self._built

    def drop(self, build: Build, draft: bool = False) -> None:
        """Forget a build's index (its codes) once its points are measured; memory stays bounded
        by one build at a time rather than the whole grid. draft: its draft's only."""
        gone = [self._drafts.pop(build, None)] + ([self._built.pop(build, None)] if not draft else [])
        for b in gone:
            if b is not None and isinstance(b.index, ShardedIndex):
                b.index.release()  # the shards' lists, held on workers

    # ------------------------------------------------------------------ points
    def curve(
        self, build: Build, nprobes: Sequence[int], depth: int, head: int | None = None, draft: bool = False
    ) -> Curve:
        """The PQ ranking to ``depth`` at every nprobe in ``nprobes``, from one scan at the
        largest (each per-list candidate set of the scan keeps ``depth``, as a search at that
        depth does); head: only the first ``head`` queries (a screening subset); draft: of the
        build's draft (:meth:`built`)."""
        index = self.built(build, draft).index
        be, xp = self.be, self.be.xp
        ps = sorted({min(p, build.nlist) for p in nprobes})
        top = ps[-1]
        q = self.queries if head is None else self.queries[:head]
        nq = q.shape[0]
        # the scan's candidate buffers hold chunk·top·depth scores and ids (12 bytes each)
        step = max(1, be.work_bytes() // (top * depth * 12))
        ranked: dict[int, list[Any]] = {p: [] for p in ps}
        scanned: dict[int, list[np.ndarray]] = {p: [] for p in ps}
        for s in range(0, nq, step):
            out_d, out_i, probes = be.retrying(lambda s=s: index.scan(q[s : s + step], depth, top), "search")
            sizes = np.cumsum(index.probed_sizes(probes), axis=1)  # (b, top)
            for p, ids in zip(ps, index.merge_prefixes(out_d, out_i, ps, depth), strict=True):
                ranked[p].append(ids)
                scanned[p].append(sizes[:, p - 1])
        return Curve(
            depth=depth,
            ranked={p: xp.concatenate(v) for p, v in ranked.items()},
            scanned={p: np.concatenate(v) for p, v in scanned.items()},
        )

    def fetcher(self, kind: str) -> Rows:
        """How re-ranking reads the ``kind`` store: with room for it, the whole store encoded
        once into the backend's memory (as a deployment holds it: a GPU's index, FAISS's
        IndexRefine; built here, outside any timed run), on a GPU within half its free memory, on
        the host within a quarter; otherwise rows read from the input as they are asked for, so
        memory stays bounded whatever N is."""
        store = self.store(kind)
        be = self.be
        if kind == "fp32" and kind not in self._resident and self.base_on_device() is not None:
            self._resident[kind] = DeviceRows(self.base_on_device().data, store)  # the same rows
        if kind not in self._resident:
            n, d = self.dataset.n, self.dataset.d
            if store.nbytes(n, d) <= be.free_memory() // (2 if be.resident_stores else 4):
                try:
                    codes = None
                    step = chunk_rows(d)
                    for s in range(0, n, step):
                        part = store.encode(self.dataset.chunk(s, min(n, s + step)))
                        if codes is None:
                            codes = be.xp.empty((n, d), dtype=part.dtype)
                        codes[s : s + part.shape[0]] = be.asarray(part)
                    self._resident[kind] = DeviceRows(codes, store)
                except be.out_of_memory_errors():  # no room after all: read rows on the host
                    codes = None
                    be.release_memory()
        if kind in self._resident:
            return self._resident[kind]

        def fetch(ids: np.ndarray) -> Any:
            """The stored vectors of ids, at the store's precision."""
            return self.be.asarray(store.round_trip(self.dataset.rows(ids)))

        return fetch

    def points(
        self, build: Build, curve: Curve, nprobe: int, k: int, reranks: Sequence[tuple[int, str]], truth: GroundTruth
    ) -> list[PointResult]:
        """Every point of ``build`` at ``nprobe`` from the curve: the raw ranking, and each
        (depth, store) in ``reranks`` (depths at most curve.depth), untimed."""
        return self.points_at(build, curve, [nprobe], k, reranks, truth)[nprobe]

    def points_at(
        self,
        build: Build,
        curve: Curve,
        nprobes: Sequence[int],
        k: int,
        reranks: Sequence[tuple[int, str]],
        truth: GroundTruth,
    ) -> dict[int, list[PointResult]]:
        """:meth:`points` at each of ``nprobes``, each (query, candidate) re-ranked once however
        many of the nprobes rank it (:func:`gpupq.refine.shared_candidate_scores`)."""
        be = self.be
        nb = self.split.n_base
        out: dict[int, list[PointResult]] = {}
        raws: dict[int, tuple[Recall, float]] = {}
        for p in nprobes:
            scanned = float(curve.scanned[p].mean())
            raw = truth.recall(be.to_numpy(curve.ranked[p][:, :k]))
            raws[p] = (raw, scanned)
            out[p] = [self.point(build, Setting(p), raw, raw, scanned, nb)]
        by_store: dict[str, list[int]] = {}
        for r, kind in reranks:
            by_store.setdefault(kind, []).append(r)
        for kind, depths in by_store.items():
            deepest = max(depths)
            cands = [curve.ranked[p][:, :deepest] for p in nprobes]
            queries = self.queries[: cands[0].shape[0]]  # a curve of the first queries only: theirs
            all_scores = shared_candidate_scores(be, queries, cands, self.fetcher(kind), self.index_metric)
            for p, cand, scores in zip(nprobes, cands, all_scores, strict=True):
                raw, scanned = raws[p]
                for r in sorted(depths):
                    _, ids = best_of(be, cand[:, :r], scores[:, :r], k, self.index_metric)
                    rec = truth.recall(be.to_numpy(ids))
                    out[p].append(self.point(build, Setting(p, r, kind), rec, raw, scanned, nb))
        return out

    def point(self, build: Build, setting: Setting, rec: Recall, raw: Recall, scanned: float, nb: int) -> PointResult:
        """A measured point with its memory bill (the store's when it re-ranks)."""
        store_bytes = self.store(setting.store).nbytes(nb, self.dataset.d) if setting.rerank else 0
        bill = memory_bill(
            nb, self.dataset.d, build.nlist, build.m, build.nbits, self.index_metric, store_bytes, build.opq,
            copies=max(1, self.train_in_shards),
        )  # fmt: skip
        return PointResult(build, setting, rec, raw, bill, scanned, scanned / nb if nb else 0.0)

    def search_fn(self, build: Build, setting: Setting, k: int) -> Callable[[], Any]:
        """One run of ``setting`` as deployed: every query, in batches, searched at its nprobe
        (to its re-rank depth when it re-ranks) and re-ranked. The run returns the ids (nq, k) on
        the backend and the codes scanned per query (nq,) int64 on the host."""
        index = self.built(build).index
        be, xp = self.be, self.be.xp
        q_all = self.queries
        want = setting.rerank or k
        fetch = self.fetcher(setting.store) if setting.rerank else None

        def run() -> tuple[Any, np.ndarray]:
            return be.retrying(attempt, "search")

        def attempt() -> tuple[Any, np.ndarray]:
            found, scanned = [], []
            for s in range(0, q_all.shape[0], self.batch_size):
                q = q_all[s : s + self.batch_size]
                _, ids, stats = index.search(q, want, setting.nprobe)
                if fetch is not None:
                    _, ids = rerank(be, q, ids, fetch, k, self.index_metric)
                found.append(ids)
                scanned.append(stats.scanned)
            return xp.concatenate(found), np.concatenate(scanned)

        return run

    def latency(self, build: Build, setting: Setting, k: int, queries: int = LATENCY_QUERIES) -> Latency:
        """Single-query latency of ``setting`` as deployed (search, and re-rank when it re-ranks),
        over the first ``queries`` queries, each searched alone (:func:`gpupq.timing.one_at_a_time`)."""
        index = self.built(build).index
        be, q_all = self.be, self.queries
        want = setting.rerank or k
        fetch = self.fetcher(setting.store) if setting.rerank else None

        def one(i: int) -> None:
            q = q_all[i : i + 1]
            _, ids, _ = index.search(q, want, setting.nprobe)
            if fetch is not None:
                rerank(be, q, ids, fetch, k, self.index_metric)

        return one_at_a_time(one, min(queries, q_all.shape[0]), be.synchronize, self.overhead)

    def time_points(self, points: Sequence[PointResult], k: int, min_time: float | None = None) -> None:
        """Time points of one build together: their runs interleaved (a drift in machine load hits
        every point alike, so their queries/s compare fairly), each until its runs cover
        ``min_time`` (at least one run), and fill in each point's queries/s."""
        if not points:
            return
        build = points[0].build
        if any(p.build != build for p in points):
            raise ValueError("time_points takes the points of one build")
        index = self.built(build).index
        for p in {pt.setting.nprobe for pt in points}:  # warm, as a deployed index is
            index.search(self.queries[: min(8, self.queries.shape[0])], k, p)
        fns = {str(i): self.search_fn(build, pt.setting, k) for i, pt in enumerate(points)}
        _, runs = repeat(fns, self.min_time if min_time is None else min_time, self.be.synchronize, self.overhead)
        nq = self.queries.shape[0]
        for i, pt in enumerate(points):
            pt.runs = runs[str(i)]
            t = pt.runs.median
            pt.queries_per_s = nq / t if t > 0 else float("inf")
