"""IVF-PQ: a flat coarse quantizer, residual product quantization, inverted lists.

Semantics follow FAISS ``IndexIVFPQ`` (``by_residual``): the coarse k-means runs 10
iterations on at most 256·nlist points; the PQ trains 25 iterations on the residuals of at
most 256·ksub points (either stops sooner once converged, as FAISS 1.15's k-means does); for
the L2 metric the scan uses the decomposition

    ‖x − c − r‖² = ‖x − c‖² + (‖r‖² + 2⟨c, r⟩) − 2⟨x, r⟩

whose middle term is the query-independent precomputed table ``(nlist, m, ksub)``. Inner
product (``ip``) scores are ⟨x, c⟩ + ⟨x, r⟩, with spherical coarse k-means as FAISS does.

Internally every score is "smaller is better" (inner products are negated); :meth:`search`
returns FAISS's convention: squared distances ascending for ``l2``, similarities descending for
``ip``, with id -1 where fewer than k vectors were scanned.

Inverted lists are stored as one array sorted by list: ``codes: (N, m) uint8`` and
``ids: (N,) int64``, list l being the rows ``offsets[l]:offsets[l+1]``. Codes are held one
byte per sub-quantizer; the memory bill counts them packed, as a real index stores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .kernelsizes import CODE_TILE_WORDS
from .kmeans import assign, kmeans, sq_norms
from .memory import PRECOMPUTED_TABLE_MAX_BYTES
from .opq import OPQ
from .pq import PQ_NITER, ProductQuantizer
from .scanplan import plan_scan

if TYPE_CHECKING:
    import numpy as np  # noqa: TID251 - type hints only

    from .backends import Array, Backend

#: FAISS Level1Quantizer's k-means iterations.
COARSE_NITER = 10
_INF = float("inf")


@dataclass
class SearchStats:
    """What one search touched."""

    scanned: np.ndarray  # (nq,) int64 on the host: codes scanned per query


class IVFPQIndex:
    """An IVF-PQ index on one backend.

    coarse: (nlist, d) float32 centroids; pq.codebooks: (m, ksub, dsub) float32;
    term2: (nlist, m, ksub) float32 precomputed table or None; codes: (N, m) uint8;
    ids: (N,) int64; offsets: (nlist + 1,) int64 list boundaries (host copy in list_sizes).
    """

    def __init__(
        self, be: Backend, d: int, nlist: int, m: int, nbits: int = 8, metric: str = "l2", opq: bool = False
    ) -> None:
        if metric not in ("l2", "ip"):
            raise ValueError(f"index metric must be l2 or ip (cosine is ip on normalised data), not {metric!r}")
        self.be = be
        self.d = d
        self.nlist = nlist
        self.metric = metric
        self.pq = ProductQuantizer(d, m, nbits)
        # FAISS "OPQ{m},IVF..,PQ{m}": every vector is rotated before the IVF-PQ sees it.
        self.opq = OPQ(d, m) if opq else None
        self.coarse: Array | None = None
        self.term2: Array | None = None
        self.warnings: list[str] = []
        self._pending: list[tuple[Array, Array, Array]] = []
        self.codes: Array | None = None
        self.ids: Array | None = None
        self.offsets: Array | None = None
        self.list_sizes: np.ndarray | None = None  # (nlist,) int64 host
        self._offsets_host: np.ndarray | None = None  # (nlist + 1,) int64 host copy of offsets
        self._base_cache: Array | None = None  # see _base_terms

    # ------------------------------------------------------------------ training
    @property
    def uses_precomputed_table(self) -> bool:
        return self.metric == "l2" and self.precomputed_table_bytes <= PRECOMPUTED_TABLE_MAX_BYTES

    @property
    def precomputed_table_bytes(self) -> int:
        return self.nlist * self.pq.m * self.pq.ksub * 4

    def train(self, x_coarse: Array, x_pq: Array, rng: np.random.Generator, x_opq: Array | None = None) -> IVFPQIndex:
        """Train the coarse quantizer on x_coarse (n1, d) and the PQ on residuals of x_pq (n2, d);
        with OPQ, first the rotation on x_opq (n3, d), default x_pq.

        All float32 on the backend; callers pass FAISS-sized samples (256·nlist, 256·ksub and
        256·256 points); larger inputs are subsampled the same way.
        """
        self.train_coarse(x_coarse, rng, x_pq if x_opq is None else x_opq)
        if self.opq is not None:
            x_pq = self.opq.apply(x_pq)
        return self.train_pq(x_pq, rng)

    def train_coarse(self, x_coarse: Array, rng: np.random.Generator, x_opq: Array | None = None) -> IVFPQIndex:
        """The first half of :meth:`train`: with OPQ the rotation (on x_opq (n3, d)), then the
        coarse quantizer on x_coarse (n1, d), unrotated. A sweep trains this once per nlist and
        shares it (:meth:`with_coarse`) across the PQ settings, as FAISS's bench_fw does."""
        be = self.be
        if self.opq is not None:
            self.opq.fit(be, x_opq, rng)
            x_coarse = self.opq.apply(x_coarse)
        res = kmeans(
            be,
            x_coarse,
            self.nlist,
            COARSE_NITER,
            rng,
            metric=self.metric,
            spherical=self.metric == "ip",
            what="coarse quantizer training",
        )
        self.coarse = res.centroids[0]
        self.warnings += res.warnings
        return self

    def with_coarse(self, other: IVFPQIndex) -> IVFPQIndex:
        """Take the trained coarse quantizer (and OPQ rotation) of ``other``, shared, not copied."""
        if (other.nlist, other.d, other.metric) != (self.nlist, self.d, self.metric):
            raise ValueError("coarse quantizer of another shape or metric")
        self.coarse = other.coarse
        if self.opq is not None:
            if other.opq is None or other.opq.m != self.opq.m:
                raise ValueError("OPQ rotation trained for another m")
            self.opq = other.opq
        self.warnings += other.warnings
        return self

    def train_pq(
        self,
        x_pq: Array,
        rng: np.random.Generator,
        points_per_centroid: int = 256,
        niter: int = PQ_NITER,
        lists: Array | None = None,
    ) -> IVFPQIndex:
        """The second half of :meth:`train`: the PQ on residuals of x_pq (n2, d), already rotated
        when OPQ is on, and the precomputed table. points_per_centroid and niter: FAISS's by
        default (a draft build trains on less). lists: (n2,) int the list of each row of x_pq
        when the caller knows it, else assigned here."""
        be = self.be
        if x_pq.shape[0] > points_per_centroid * self.pq.ksub:
            keep = be.asarray(rng.permutation(x_pq.shape[0])[: points_per_centroid * self.pq.ksub])
            x_pq = x_pq[keep]
            lists = lists[keep] if lists is not None else None
        self.pq.fit(be, self.residuals(x_pq, lists), rng, niter=niter, max_points_per_centroid=points_per_centroid)
        self.warnings += self.pq.train_result.warnings
        if self.uses_precomputed_table:
            self.term2 = self._list_terms(be.xp.arange(self.nlist))
        return self

    # ------------------------------------------------------------------ kept (--cache)
    def state(self, lists: bool = True) -> dict[str, np.ndarray]:
        """What training (and, with ``lists``, adding) made, on the host: coarse (nlist, d)
        float32, codebooks (m, ksub, dsub) float32, rotation (d, d) float32 under OPQ; codes
        (N, m) uint8, ids (N,) int64 and list_sizes (nlist,) int64 (the lists, built)."""
        be, host = self.be, self.be.host
        out = {"coarse": be.to_numpy(self.coarse), "codebooks": be.to_numpy(self.pq.codebooks)}
        if self.opq is not None:
            out["rotation"] = be.to_numpy(self.opq.rotation)
        if lists:
            self.build()
            empty = self.ids is None
            out["codes"] = host.zeros((0, self.pq.m), host.uint8) if empty else be.to_numpy(self.codes)
            out["ids"] = host.zeros(0, host.int64) if empty else be.to_numpy(self.ids)
            out["list_sizes"] = host.zeros(self.nlist, host.int64) if empty else self.list_sizes
        return out

    def restore(self, state: dict[str, np.ndarray]) -> IVFPQIndex:
        """Take :meth:`state`'s arrays as this index's (its parameters must match); what follows
        from them (the precomputed table, the lists' offsets and L2 terms) is computed as
        training and building compute it, so the index is the one that was kept, bit for bit."""
        be, xp, host = self.be, self.be.xp, self.be.host
        self.coarse = be.asarray(state["coarse"])
        self.pq.codebooks = be.asarray(state["codebooks"])
        if self.opq is not None:
            self.opq.rotation = be.asarray(state["rotation"])
        if (self.coarse.shape, self.pq.codebooks.shape[0]) != ((self.nlist, self.d), self.pq.m):
            raise ValueError("a kept index of other parameters")
        if self.uses_precomputed_table:
            self.term2 = self._list_terms(xp.arange(self.nlist))
        self.reset()
        if "codes" in state and state["ids"].shape[0]:
            sizes = host.asarray(state["list_sizes"], dtype=host.int64)
            self.codes, self.ids = be.asarray(state["codes"]), be.asarray(state["ids"])
            self.offsets = be.asarray(host.concatenate([[0], host.cumsum(sizes)]).astype(host.int64))
            self.list_sizes, self._offsets_host = sizes, be.to_numpy(self.offsets)
            if self.metric == "l2":
                self._base_terms(be.asarray(host.repeat(host.arange(self.nlist, dtype=host.int64), sizes)))
        return self

    def coarse_assign(self, x: Array) -> Array:
        """x: (n, d) float32 -> list numbers (n,) int64."""
        labels, _ = assign(self.be, x[None], self.coarse[None], self.metric, with_score=False)
        return labels[0]

    def residuals(self, x: Array, labels: Array | None = None) -> Array:
        """x: (n, d) float32 -> x − coarse[label]: (n, d) float32."""
        if labels is None:
            labels = self.coarse_assign(x)
        out = self.be.xp.take(self.coarse, labels, axis=0)  # a take: half the time of coarse[labels]
        return self.be.xp.subtract(x, out, out=out)

    def _list_terms(self, lists: Array) -> Array:
        """‖r‖² + 2⟨c_l, r⟩ for every codeword r of every sub-quantizer, for the given lists.

        lists: (L,) int64 -> (L, m, ksub) float32 (zeros under ip, where the term is absent).
        """
        xp = self.be.xp
        cb = self.pq.codebooks  # (m, ksub, dsub)
        if self.metric != "l2":
            return xp.zeros((lists.shape[0], self.pq.m, self.pq.ksub), dtype=xp.float32)
        if self.term2 is not None:
            return self.term2[lists]
        c = self.coarse[lists].reshape(-1, self.pq.m, self.pq.dsub)  # (L, m, dsub)
        cross = xp.matmul(xp.transpose(c, (1, 0, 2)), xp.transpose(cb, (0, 2, 1)))  # (m, L, ksub)
        # C order: the sum would keep the transpose's memory order, and a flat take of a table
        # in any other order copies it whole first (100 MB a call at IVF1024, PQ96)
        return xp.ascontiguousarray(xp.transpose(2.0 * cross, (1, 0, 2)) + sq_norms(self.be, cb)[None])

    # ------------------------------------------------------------------ adding
    def add(self, x: Array, ids: Array, lists: Array | None = None) -> None:
        """Encode x: (n, d) float32 with ids: (n,) int64 in [0, 2^32 - 1), or any ids >= 0
        with the backend's ``wide_ids`` (both on the backend); the lists are rebuilt once, by
        :meth:`build` or the next search. lists: (n,) int each vector's list when the caller
        knows it (from another build of the same coarse quantizer), else assigned here."""
        be, xp = self.be, self.be.xp
        n = x.shape[0]
        # exact top-k packs an id into 32 bits beside its score (one small read per call)
        lo, hi = (int(v) for v in be.to_numpy(xp.stack([ids.min(), ids.max()]))) if n else (0, 0)
        if lo < 0 or (hi >= 2**32 - 1 and not be.wide_ids):
            raise ValueError("IVFPQIndex ids must lie in [0, 2^32 - 1), or be >= 0 on a backend with wide_ids")
        labels = xp.empty(n, dtype=xp.int64)
        codes = xp.empty((n, self.pq.m), dtype=xp.uint8)

        def encode(rows: slice) -> None:
            # every step of a row block in one worker: the residuals, transposes and casts
            # between the products run on the thread budget too, not only the products
            part = x[rows] if self.opq is None else self.opq.apply(x[rows])
            labels[rows] = self.coarse_assign(part) if lists is None else lists[rows]
            codes[rows] = self.pq.encode(be, self.residuals(part, labels[rows]))

        be.map(encode, be.row_groups(n))
        self._pending.append((labels, codes, ids))

    def reset(self) -> None:
        """Empty the inverted lists, keeping what was trained (as FAISS ``Index.reset``)."""
        self._pending = []
        self.codes = self.ids = self.offsets = None
        self.list_sizes = self._offsets_host = None
        self._base_cache = None

    @property
    def ntotal(self) -> int:
        built = 0 if self.ids is None else int(self.ids.shape[0])
        return built + sum(int(p[2].shape[0]) for p in self._pending)

    def build(self) -> None:
        """Merge what was added into the sorted inverted lists (search calls this itself)."""
        if not self._pending:
            return
        be, xp = self.be, self.be.xp
        labels = [p[0] for p in self._pending]
        codes = [p[1] for p in self._pending]
        ids = [p[2] for p in self._pending]
        if self.ids is not None:
            old_labels = self._row_lists()
            labels.insert(0, old_labels)
            codes.insert(0, self.codes)
            ids.insert(0, self.ids)
        all_labels = xp.concatenate(labels)
        order = be.argsort_stable(all_labels)
        sorted_labels = all_labels[order]
        self.codes = xp.concatenate(codes)[order]  # (N, m)
        self.ids = xp.concatenate(ids)[order]
        sizes = be.count_labels(all_labels, self.nlist)
        self.offsets = xp.concatenate([xp.zeros(1, dtype=xp.int64), xp.cumsum(sizes)]).astype(xp.int64)
        self.list_sizes = be.to_numpy(sizes).astype("int64")
        self._offsets_host = be.to_numpy(self.offsets)
        self._pending = []
        # The lists scan needs one query-independent term per vector: computing it here makes
        # it part of building the index (as FAISS builds its table in train), not of a search.
        self._base_cache = None
        if self.metric == "l2":
            self._base_terms(sorted_labels)

    # ------------------------------------------------------------------ search
    def search(self, q: Array, k: int, nprobe: int) -> tuple[Array, Array, SearchStats]:
        """Approximate k nearest neighbours of q: (nq, d) float32.

        Returns (scores (nq, k) float32, ids (nq, k) int64, stats) in FAISS's convention
        (see the module docstring): :meth:`scan`, then :meth:`merge`.
        """
        self.build()
        be, xp = self.be, self.be.xp
        nprobe = min(nprobe, self.nlist)
        # Candidate buffers hold nq·nprobe·k scores and ids (12 bytes each): split the queries
        # when that outgrows the work budget (a large k for re-ranking, a wide probe).
        step = max(1, be.work_bytes() // (nprobe * k * 12))
        if q.shape[0] > step:
            parts = [self.search(q[s : s + step], k, nprobe) for s in range(0, q.shape[0], step)]
            return (
                xp.concatenate([p[0] for p in parts]),
                xp.concatenate([p[1] for p in parts]),
                SearchStats(scanned=be.host.concatenate([p[2].scanned for p in parts])),
            )
        out_d, out_i, probes = self.scan(q, k, nprobe)
        dist, found = self.merge(out_d, out_i, k)
        scanned = self.list_sizes[probes].sum(axis=1)
        return dist, found, SearchStats(scanned=scanned)

    def scan(self, q: Array, k: int, nprobe: int) -> tuple[Array, Array, Array]:
        """The best k candidates of each probed list, per query, by probe rank.

        q: (nq, d) float32. Returns scores (nq, nprobe, k) float32 (smaller is better, inf for
        an empty slot), ids (nq, nprobe, k) int64, and probes (nq, nprobe) int64 on the host: the
        lists in order of coarse score (the scan plans its chunks from them there). Rank r holds
        the same candidates whatever nprobe > r is asked, so ``merge(scores[:, :p], ids[:, :p],
        k)`` is the search at nprobe p: a sweep scans once at its largest nprobe and reads
        every smaller one from the prefix.
        """
        self.build()
        q, coarse_score, probes_h = self.probe(q, nprobe)
        out_d, out_i = self._scan_lists(q, coarse_score, probes_h, k)
        return out_d, out_i, probes_h

    def probed_sizes(self, probes: np.ndarray) -> np.ndarray:
        """Vectors scanned at each probe rank: probes (nq, nprobe) int64 -> (nq, nprobe) int64."""
        return self.list_sizes[probes]

    def probe(self, q: Array, nprobe: int) -> tuple[Array, Array, np.ndarray]:
        """The coarse search of :meth:`scan`: q (nq, d) float32 -> (q as the lists are scanned
        with it (rotated under OPQ), coarse scores (nq, nprobe) float32, probes (nq, nprobe)
        int64 on the host). Needs only the trained quantizers: a sharded index computes it
        once and hands it to every shard's lists (as FAISS's IndexShardsIVF does)."""
        be, xp = self.be, self.be.xp
        nprobe = min(nprobe, self.nlist)
        if self.opq is not None:
            q = self.opq.apply(q)
        # Coarse search, in query groups on the thread budget: scores (nq, nlist), smaller is
        # better, and the nprobe best lists, ties by list number.
        coarse_score = xp.empty((q.shape[0], nprobe), dtype=xp.float32)
        probes = xp.empty((q.shape[0], nprobe), dtype=xp.int64)
        c_norms = sq_norms(be, self.coarse)

        def coarse_search(rows: slice) -> None:
            dots = xp.matmul(q[rows], self.coarse.T)
            if self.metric == "l2":
                cscore = sq_norms(be, q[rows])[:, None] - 2.0 * dots + c_norms[None]
            else:
                cscore = -dots
            coarse_score[rows], probes[rows] = be.topk_exact(cscore, nprobe)

        be.map(coarse_search, be.row_groups(q.shape[0]))
        # The one copy to the host in a search: the plan's shapes depend on the probed lists.
        return q, coarse_score, be.to_numpy(probes)

    def scan_probed(self, q: Array, coarse_score: Array, probes: np.ndarray, k: int) -> tuple[Array, Array]:
        """:meth:`scan` from a :meth:`probe` made elsewhere (by the same trained quantizers):
        this index's best k of each probed list, (nq, nprobe, k) scores and ids."""
        self.build()
        return self._scan_lists(q, coarse_score, probes, k)

    def merge(self, out_d: Array, out_i: Array, k: int) -> tuple[Array, Array]:
        """Per-rank candidates (nq, p, k') from :meth:`scan` -> the top k over them: scores
        (nq, k) float32 in FAISS's convention and ids (nq, k) int64, -1 where none."""
        be, xp = self.be, self.be.xp
        # p·k' candidate slots per query, so k of them exist when k' >= k; empty ones are inf.
        nq = out_d.shape[0]
        cand = out_i.reshape(nq, -1)
        flat_d = out_d.reshape(nq, -1)
        kk = min(k, flat_d.shape[1])
        dist = xp.empty((nq, kk), dtype=xp.float32)
        found = xp.empty((nq, kk), dtype=xp.int64)

        def merge_rows(rows: slice) -> None:
            # ties by id: the same pick whatever the layout of the candidates
            dist[rows], found[rows] = be.topk_exact(flat_d[rows], k, tiebreak=cand[rows])

        be.map(merge_rows, be.row_groups(nq))
        found = xp.where(xp.isfinite(dist), found, -1)
        if self.metric == "ip":
            dist = -dist
        return dist, found

    def merge_prefixes(self, out_d: Array, out_i: Array, ps: Sequence[int], k: int) -> list[Array]:
        """The ids of ``merge(out_d[:, :p], out_i[:, :p], k)`` for each p of ascending ``ps``:
        (nq, k') int64 each, -1 past the candidates. Each p's best k is merged from the previous
        p's best k and the ranks since: (score, id) is a total order and an id sits in one list,
        so the picks are the same, and the work is one pass over the ranks rather than one per p
        (a curve reads 11 nprobes of one scan, a bisection about 15)."""
        be, xp = self.be, self.be.xp
        nq = out_d.shape[0]
        best_d = xp.empty((nq, 0), dtype=xp.float32)
        best_i = xp.empty((nq, 0), dtype=xp.int64)
        out, prev = [], 0
        for p in ps:
            cand_d = xp.concatenate([best_d, out_d[:, prev:p].reshape(nq, -1)], axis=1)
            cand_i = xp.concatenate([best_i, out_i[:, prev:p].reshape(nq, -1)], axis=1)
            kk = min(k, cand_d.shape[1])
            best_d = xp.empty((nq, kk), dtype=xp.float32)
            best_i = xp.empty((nq, kk), dtype=xp.int64)

            def merge_rows(
                rows: slice, cand_d: Array = cand_d, cand_i: Array = cand_i, to_d: Array = best_d, to_i: Array = best_i
            ) -> None:
                to_d[rows], to_i[rows] = be.topk_exact(cand_d[rows], k, tiebreak=cand_i[rows])

            be.map(merge_rows, be.row_groups(nq))
            out.append(xp.where(xp.isfinite(best_d), best_i, -1))
            prev = p
        return out

    def _scan_lists(self, q: Array, coarse_score: Array, probes: Array, k: int) -> tuple[Array, Array]:
        """Scan each probed list once for all the queries that probe it, many lists per call.

        Each list's codes are decoded into residuals r: (n_l, d), and the queries that probe it
        are scored by a product, using the same decomposition as the tables:
        ‖q − c − r‖² = ‖q − c‖² + (‖r‖² + 2⟨c, r⟩) − 2⟨q, r⟩. Per code this is d multiply-adds
        instead of m table lookups, but BLAS (cuBLAS) does them at full speed, and the number
        of array calls depends on neither m nor nprobe. Which lists are scanned for which
        queries, in chunks of about ``be.scan_bytes()``, is planned on the host
        (:mod:`gpupq.scanplan`); a chunk of G items is one batched product
        (G, width, d) × (G, d, depth).

        q: (nq, d); coarse_score: (nq, nprobe); probes: (nq, nprobe) int64 on the host.
        Returns per-(query, probe) candidates:
        scores (nq, nprobe, k) float32 (inf for an empty slot) and ids (nq, nprobe, k) int64
        (-1 for an empty slot).
        """
        be, xp = self.be, self.be.xp
        nq, nprobe = probes.shape
        m, ksub, d = self.pq.m, self.pq.ksub, self.d
        # the table scan reads 4 codes a word, a tile of rows at a time
        kernels = getattr(be, "kernels", None) if m % 4 == 0 and m // 4 <= CODE_TILE_WORDS else None
        # the tables take m·ksub floats per query: query groups when they outgrow half the budget
        step = max(1, be.work_bytes() // (2 * 4 * m * ksub))
        if kernels is not None and nq > step:
            parts = [
                self._scan_lists(q[s : s + step], coarse_score[s : s + step], probes[s : s + step], k)
                for s in range(0, nq, step)
            ]
            return xp.concatenate([p[0] for p in parts]), xp.concatenate([p[1] for p in parts])
        npairs = nq * nprobe
        out_d = xp.full((npairs, k), _INF, dtype=xp.float32)  # row = query·nprobe + rank
        out_i = xp.full((npairs, k), -1, dtype=xp.int64)
        # The plan (which lists, which queries, chunk shapes) is made on the host.
        plan = plan_scan(probes, self.list_sizes, self._offsets_host, d, m, self.be.scan_bytes())

        # Padding query slots read row nq of the queries and entry npairs of the coarse scores.
        q_ext = xp.zeros((nq + 1, d), dtype=xp.float32)
        q_ext[:nq] = q * (-2.0 if self.metric == "l2" else -1.0)
        coarse_ext = xp.zeros(npairs + 1, dtype=xp.float32)
        coarse_ext[:npairs] = coarse_score.ravel()
        base_terms = self._base_terms() if self.metric == "l2" else None
        if kernels is None:  # the decoded form's flat codebook rows: code c of j is row j·ksub + c
            codebooks_flat = self.pq.codebooks.reshape(m * ksub, self.pq.dsub)
            sub_offset = xp.arange(m, dtype=xp.int64) * ksub
        else:
            # FAISS GPU's and cuVS's form: per query a table lut[j, c] = ⟨q_j, codebook_j[c]⟩
            # (q scaled as above), and per code m lookups in it, reading 1 byte per lookup
            # rather than the decoded residual's d floats. (nq + 1, m, ksub) float32.
            dsub = self.pq.dsub
            lut = xp.matmul(
                xp.transpose(q_ext.reshape(nq + 1, m, dsub), (1, 0, 2)), xp.transpose(self.pq.codebooks, (0, 2, 1))
            )
            lut = xp.ascontiguousarray(xp.transpose(lut, (1, 0, 2)))
            words = self.codes.view(xp.uint32)  # (N, m / 4): four codes a word
            base = base_terms if base_terms is not None else xp.zeros(self.codes.shape[0], dtype=xp.float32)

        def scan_chunk(bounds: tuple[int, int]) -> None:
            part = plan.chunk(bounds)
            g, width, depth = part.shape
            pair = be.asarray(part.pair)
            if kernels is not None:  # per item, not per code: (G,) first rows and lengths
                first = be.asarray(part.start)
                args = (lut, words, base, coarse_ext, pair, first, be.asarray(part.length), depth, nprobe)
                acc = kernels.lut_scan(*args)
                rows = None
            else:
                rows = be.asarray(part.rows)
                r = xp.take(codebooks_flat, xp.take(self.codes, rows, axis=0) + sub_offset, axis=0)
                acc = xp.matmul(xp.take(q_ext, pair // nprobe, axis=0), xp.transpose(r.reshape(g, depth, d), (0, 2, 1)))
                acc += xp.take(coarse_ext, pair)[:, :, None]  # (G, width, depth)
                col_term = base_terms[rows] if base_terms is not None else xp.zeros(rows.shape, dtype=xp.float32)
                acc += xp.where(be.asarray(part.valid), col_term, _INF)[:, None, :]  # padding columns never win
            # ties by position in the list (id order), so the pick is the same at any nprobe
            vals, pos = be.topk_exact(acc.reshape(g * width, depth), k, sort=False)  # sorted once, in the merge
            kk = vals.shape[1]
            item = xp.arange(g * width, dtype=xp.int64) // width  # (G·width,) each row's item
            if rows is None:  # a pick's stored row: its item's first row plus its position
                # (past the item for padding picks, masked below: kept in range for the take)
                found = xp.minimum(xp.take(first, item)[:, None] + pos, self.codes.shape[0] - 1)
            else:
                found = xp.take(rows, pos + (item * depth)[:, None])
            keep, dest = be.asarray(part.keep), be.asarray(part.dest)  # the slots that are not padding
            out_d[dest, :kk] = vals[keep]
            out_i[dest, :kk] = xp.where(xp.isfinite(vals[keep]), xp.take(self.ids, found[keep]), -1)

        be.map(scan_chunk, plan.chunks)
        return out_d.reshape(nq, nprobe, k), out_i.reshape(nq, nprobe, k)

    def _row_lists(self) -> Array:
        """List number of every stored row: (N,) int64 (cupy.repeat takes no array counts)."""
        xp = self.be.xp
        return xp.searchsorted(self.offsets[1:], xp.arange(self.codes.shape[0]), side="right")

    def _base_terms(self, labels: Array | None = None) -> Array:
        """‖r‖² + 2⟨c, r⟩ of every stored vector: (N,) float32, query-independent.

        The scan's form of the precomputed table: summed once per stored vector (m
        lookups each) when the lists are built, and cached in this process. The memory bill
        still reports FAISS's precomputed table, which is what a deployment holds.
        labels: (N,) int64 list of each stored row, when the caller has them.
        """
        if self._base_cache is None:
            xp = self.be.xp
            m, ksub = self.pq.m, self.pq.ksub
            out = xp.empty(self.codes.shape[0], dtype=xp.float32)
            if labels is None:
                labels = self._row_lists()
            # cache-sized pieces on a CPU: the (rows, m) index and value arrays stay in cache
            # (benchmarks/RESULTS.md, "Measurements behind constants")
            step = max(1024, self.be.block_bytes() // (16 * m))
            sub = xp.arange(m) * ksub
            for s in range(0, out.shape[0], step):
                lists = labels[s : s + step]
                if self.term2 is not None:  # a flat take: (list·m + j)·ksub + code
                    flat = (lists * (m * ksub))[:, None] + sub + self.codes[s : s + step]
                    out[s : s + step] = xp.take(self.term2, flat).sum(axis=1)
                else:  # table too large to keep: decode instead
                    r = self.pq.decode(self.be, self.codes[s : s + step])
                    out[s : s + step] = sq_norms(self.be, r) + 2.0 * (r * self.coarse[lists]).sum(axis=1)
            self._base_cache = out
        return self._base_cache
