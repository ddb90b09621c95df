"""IVF-PQ: a flat coarse quantizer, residual product quantization, inverted lists.

Semantics follow FAISS ``IndexIVFPQ`` (``by_residual``): the coarse k-means runs 10
iterations on at most 256·nlist points; the PQ trains 25 iterations on the residuals of at
most 256·ksub points; for the L2 metric the scan uses the decomposition

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

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .kmeans import assign, kmeans, sq_norms
from .opq import OPQ
from .pq import ProductQuantizer, packed_code_size

if TYPE_CHECKING:
    import numpy as np  # noqa: TID251 - type hints only

    from .backends import Array, Backend

#: FAISS Level1Quantizer's k-means iterations.
COARSE_NITER = 10
#: FAISS uses the precomputed L2 table when it is at most this large.
PRECOMPUTED_TABLE_MAX_BYTES = 2 << 30
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

    def train_pq(self, x_pq: Array, rng: np.random.Generator) -> IVFPQIndex:
        """The second half of :meth:`train`: the PQ on residuals of x_pq (n2, d), already rotated
        when OPQ is on, and the precomputed table."""
        be = self.be
        if x_pq.shape[0] > 256 * self.pq.ksub:
            x_pq = x_pq[be.asarray(rng.permutation(x_pq.shape[0])[: 256 * self.pq.ksub])]
        self.pq.fit(be, self.residuals(x_pq), rng)
        self.warnings += self.pq.train_result.warnings
        if self.uses_precomputed_table:
            self.term2 = self._list_terms(be.xp.arange(self.nlist))
        return self

    def coarse_assign(self, x: Array) -> Array:
        """x: (n, d) float32 -> list numbers (n,) int64."""
        labels, _ = assign(self.be, x[None], self.coarse[None], self.metric, with_score=False)
        return labels[0]

    def residuals(self, x: Array, labels: Array | None = None) -> Array:
        """x: (n, d) float32 -> x − coarse[label]: (n, d) float32."""
        if labels is None:
            labels = self.coarse_assign(x)
        return x - self.coarse[labels]

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
        return xp.transpose(2.0 * cross, (1, 0, 2)) + sq_norms(self.be, cb)[None]

    # ------------------------------------------------------------------ adding
    def add(self, x: Array, ids: Array) -> None:
        """Encode x: (n, d) float32 with ids: (n,) int64 (both on the backend); the lists are
        rebuilt once, by :meth:`build` or the next search."""
        if self.opq is not None:
            x = self.opq.apply(x)
        labels = self.coarse_assign(x)
        codes = self.pq.encode(self.be, self.residuals(x, labels))
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
        self.codes = xp.concatenate(codes)[order]  # (N, m)
        self.ids = xp.concatenate(ids)[order]
        sizes = xp.bincount(all_labels, minlength=self.nlist)
        self.offsets = xp.concatenate([xp.zeros(1, dtype=xp.int64), xp.cumsum(sizes)]).astype(xp.int64)
        self.list_sizes = be.to_numpy(sizes).astype("int64")
        self._offsets_host = be.to_numpy(self.offsets)
        self._pending = []
        # The lists scan needs one query-independent term per vector: computing it here makes
        # it part of building the index (as FAISS builds its table in train), not of a search.
        self._base_cache = None
        if self.metric == "l2" and be.scan_strategy == "lists":
            self._base_terms()

    # ------------------------------------------------------------------ search
    def search(self, q: Array, k: int, nprobe: int) -> tuple[Array, Array, SearchStats]:
        """Approximate k nearest neighbours of q: (nq, d) float32.

        Returns (scores (nq, k) float32, ids (nq, k) int64, stats) in FAISS's convention
        (see the module docstring); the scan strategy is the backend's.
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
        scanned = self.list_sizes[be.to_numpy(probes)].sum(axis=1)
        return dist, found, SearchStats(scanned=scanned)

    def scan(self, q: Array, k: int, nprobe: int) -> tuple[Array, Array, Array]:
        """The best k candidates of each probed list, per query, by probe rank.

        q: (nq, d) float32. Returns scores (nq, nprobe, k) float32 (smaller is better, inf for
        an empty slot), ids (nq, nprobe, k) int64, and probes (nq, nprobe) int64: the lists in
        order of coarse score. Rank r holds the same candidates whatever nprobe > r is asked,
        so ``merge(scores[:, :p], ids[:, :p], k)`` is the search at nprobe p: a sweep scans
        once at its largest nprobe and reads every smaller one from the prefix.
        """
        self.build()
        be, xp = self.be, self.be.xp
        nprobe = min(nprobe, self.nlist)
        if self.opq is not None:
            q = self.opq.apply(q)
        # Coarse search: scores (nq, nlist), smaller is better.
        dots = xp.matmul(q, self.coarse.T)
        if self.metric == "l2":
            cscore = sq_norms(be, q)[:, None] - 2.0 * dots + sq_norms(be, self.coarse)[None]
        else:
            cscore = -dots
        coarse_score, probes = be.topk_exact(cscore, nprobe)  # (nq, nprobe); ties by list number
        if be.scan_strategy == "lists":
            out_d, out_i = self._scan_lists(q, coarse_score, probes, k)
        else:
            # Query tables, smaller is better: −2⟨q_j, r⟩ (l2) or −⟨q_j, r⟩ (ip).
            qtab = self.pq.inner_tables(be, q)
            qtab *= -2.0 if self.metric == "l2" else -1.0
            out_d, out_i = self._scan_padded(qtab, coarse_score, probes, k)
        return out_d, out_i, probes

    def merge(self, out_d: Array, out_i: Array, k: int) -> tuple[Array, Array]:
        """Per-rank candidates (nq, p, k') from :meth:`scan` -> the top k over them: scores
        (nq, k) float32 in FAISS's convention and ids (nq, k) int64, -1 where none."""
        be, xp = self.be, self.be.xp
        # p·k' candidate slots per query, so k of them exist when k' >= k; empty ones are inf.
        nq = out_d.shape[0]
        cand = out_i.reshape(nq, -1)
        dist, pos = be.topk_exact(out_d.reshape(nq, -1), k, tiebreak=cand)  # ties by id: layout-free
        found = xp.take_along_axis(cand, pos, axis=1)
        found = xp.where(xp.isfinite(dist), found, -1)
        if self.metric == "ip":
            dist = -dist
        return dist, found

    def _scan_lists(self, q: Array, coarse_score: Array, probes: Array, k: int) -> tuple[Array, Array]:
        """Scan each probed list once for all the queries that probe it (the CPU strategy).

        Each list's codes are decoded once into residuals r: (n_l, d), and the queries that
        probe it are scored in one small GEMM, using the same decomposition as the tables:
        ‖q − c − r‖² = ‖q − c‖² + (‖r‖² + 2⟨c, r⟩) − 2⟨q, r⟩. Per code this is d multiply-adds
        instead of m table lookups, but BLAS does them at full speed and numpy's per-call
        overhead is paid once per list rather than once per sub-quantizer.

        q: (nq, d); coarse_score, probes: (nq, nprobe). Returns per-(query, probe) candidates:
        scores (nq, nprobe, k) float32 and ids (nq, nprobe, k) int64.
        """
        be = self.be
        host = be.host
        nq, nprobe = probes.shape
        m, ksub = self.pq.m, self.pq.ksub
        out_d = host.full((nq * nprobe, k), _INF, dtype=host.float32)  # row = query·nprobe + rank
        out_i = host.full((nq * nprobe, k), -1, dtype=host.int64)
        probes_flat = probes.ravel()
        order = host.argsort(probes_flat, kind="stable")
        lists_sorted = probes_flat[order]
        starts = host.flatnonzero(host.r_[True, lists_sorted[1:] != lists_sorted[:-1]])
        bounds = host.r_[starts, len(order)]
        codebooks_flat = self.pq.codebooks.reshape(m * ksub, self.pq.dsub)
        sub_offset = host.arange(m, dtype=host.intp) * ksub
        offsets = self._offsets_host
        q_scaled = q * (-2.0 if self.metric == "l2" else -1.0)
        q_of = order // nprobe
        coarse_flat = coarse_score.ravel()
        base_terms = self._base_terms() if self.metric == "l2" else None

        # One Python loop over lists: threads were measured not to help, as each list's work
        # is a few small numpy calls that hold the GIL.
        for g in range(len(starts)):
            lo, hi = bounds[g], bounds[g + 1]
            lst = int(lists_sorted[lo])
            s, e = int(offsets[lst]), int(offsets[lst + 1])
            if e == s:
                continue
            pair, qs = order[lo:hi], q_of[lo:hi]
            # codes (n_l, m) -> residuals (n_l, d): one gather from the flattened codebooks
            r = host.take(codebooks_flat, self.codes[s:e] + sub_offset, axis=0).reshape(e - s, self.d)
            acc = host.take(q_scaled, qs, axis=0) @ r.T  # (nQ, n_l)
            acc += host.take(coarse_flat, pair)[:, None]
            if base_terms is not None:
                acc += base_terms[s:e]
            # ties by position (id order within the list), so the pick is the same at any nprobe
            vals, pos = be.topk_exact(acc, k, sort=False)  # merged and sorted once, at the end
            kk = vals.shape[1]
            out_d[pair, :kk] = vals
            out_i[pair, :kk] = host.take(self.ids, s + pos)
        return out_d.reshape(nq, nprobe, k), out_i.reshape(nq, nprobe, k)

    def _row_lists(self) -> Array:
        """List number of every stored row: (N,) int64 (cupy.repeat takes no array counts)."""
        xp = self.be.xp
        return xp.searchsorted(self.offsets[1:], xp.arange(self.codes.shape[0]), side="right")

    def _base_terms(self) -> Array:
        """‖r‖² + 2⟨c, r⟩ of every stored vector: (N,) float32, query-independent.

        The lists strategy's form of the precomputed table: summed once per stored vector (m
        lookups each) when the lists are built, and cached in this process. The memory bill
        still reports FAISS's precomputed table, which is what a deployment holds.
        """
        if self._base_cache is None:
            xp = self.be.xp
            m, ksub = self.pq.m, self.pq.ksub
            out = xp.empty(self.codes.shape[0], dtype=xp.float32)
            labels = self._row_lists()
            step = max(1024, self.be.work_bytes() // (16 * m))
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

    def _scan_padded(self, qtab: Array, coarse_score: Array, probes: Array, k: int) -> tuple[Array, Array]:
        """Scan one probed list per query at a time, padded to the longest list (the GPU
        strategy: fixed shapes, a few large kernels per probe rank, no per-list loop).

        Shapes as in :meth:`_scan_lists`.
        """
        be, xp = self.be, self.be.xp
        nq, nprobe = probes.shape
        m = self.pq.m
        maxlen = int(self.list_sizes.max()) if self.nlist else 0
        kk = min(k, max(maxlen, 1))
        out_d = xp.full((nq, nprobe, k), _INF, dtype=xp.float32)
        out_i = xp.full((nq, nprobe, k), -1, dtype=xp.int64)
        if maxlen == 0:
            return out_d, out_i
        # Per query row: (maxlen,) int64 positions and codes, float32 scores, bool mask.
        batch = max(1, be.work_bytes() // (maxlen * 32))
        col = xp.arange(maxlen, dtype=xp.int64)[None]
        sizes = self.offsets[1:] - self.offsets[:-1]
        for b0 in range(0, nq, batch):
            b1 = min(nq, b0 + batch)
            for p in range(nprobe):
                lists = probes[b0:b1, p]
                lens = sizes[lists]
                valid = col < lens[:, None]
                pos = xp.where(valid, self.offsets[lists][:, None] + col, 0)  # (B, maxlen)
                lut = qtab[b0:b1] + self._list_terms(lists)  # (B, m, ksub)
                acc = xp.broadcast_to(coarse_score[b0:b1, p][:, None], pos.shape).copy()
                for j in range(m):
                    codes = self.codes[pos, j].astype(xp.int64)  # (B, maxlen)
                    acc += xp.take_along_axis(lut[:, j, :], codes, axis=1)
                acc = xp.where(valid, acc, _INF)
                vals, idx = be.topk_exact(acc, kk)  # ties by position, as the lists scan
                out_d[b0:b1, p, :kk] = vals
                out_i[b0:b1, p, :kk] = self.ids[xp.take_along_axis(pos, idx, axis=1)]
        return out_d, out_i


def index_memory_terms(
    n: int, d: int, nlist: int, m: int, nbits: int, metric: str, opq: bool = False
) -> dict[str, int]:
    """Bytes of each part of an IVF-PQ index with a flat coarse quantizer (see metrics)."""
    ksub = 1 << nbits
    table = nlist * m * ksub * 4
    return {
        "codes": n * packed_code_size(m, nbits),
        "ids": n * 8,
        "coarse_centroids": nlist * d * 4,
        "pq_codebooks": ksub * d * 4,
        "list_sizes": nlist * 8,
        "opq_matrix": d * d * 4 if opq else 0,
        "precomputed_table": table if metric == "l2" and table <= PRECOMPUTED_TABLE_MAX_BYTES else 0,
    }
