"""gpupq against faiss-cpu IndexIVFPQ: same data, same split, same parameters.

Recall raw and re-ranked must agree within 0.03 (two independent k-means runs differ by a
little; more queries than pqtool's 100 keep that noise well inside the margin), and the memory
bill within 1% of ``faiss.serialize_index``.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpupq
from gpupq.data import Dataset, hold_out
from gpupq.metrics import memory_bill, recall_at_k

from .conftest import clustered

faiss = pytest.importorskip("faiss")
pytestmark = pytest.mark.faiss


def faiss_recall(dataset: Dataset, cfg: gpupq.EstimateConfig) -> tuple[float, float, int]:
    """Recall raw, recall re-ranked and serialized size of FAISS's IndexIVFPQ on our split."""
    split = hold_out(dataset, cfg.queries, cfg.seed)
    ids = split.base_ids()
    ds = Dataset(dataset.array, dataset.source, cfg.metric)
    xb, xq = ds.rows(ids), Dataset(dataset.array, "", cfg.metric).rows(split.query_ids)
    d = xb.shape[1]
    if cfg.metric == "l2":
        quantizer, metric = faiss.IndexFlatL2(d), faiss.METRIC_L2
    else:
        quantizer, metric = faiss.IndexFlatIP(d), faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexIVFPQ(quantizer, d, cfg.nlist, cfg.m, cfg.nbits, metric)
    index.train(xb)
    index.add_with_ids(xb, ids)
    index.nprobe = cfg.nprobe
    _, found = index.search(xq, max(cfg.k, cfg.rerank))
    flat = faiss.IndexFlatL2(d) if cfg.metric == "l2" else faiss.IndexFlatIP(d)
    flat.add(xb)
    _, gt = flat.search(xq, cfg.k)
    gt = ids[gt]
    raw = recall_at_k(found, gt, cfg.k).mean
    # exact re-rank of FAISS's top-R
    vec = xb[np.searchsorted(ids, np.maximum(found, 0))]
    if cfg.metric == "l2":
        score = ((vec - xq[:, None]) ** 2).sum(-1)
    else:
        score = -(vec * xq[:, None]).sum(-1)
    score[found < 0] = np.inf
    rr = np.take_along_axis(found, np.argsort(score, axis=1, kind="stable")[:, : cfg.k], axis=1)
    return raw, recall_at_k(rr, gt, cfg.k).mean, len(faiss.serialize_index(index))


CASES = {
    # pqtool.py's synthetic setting: 10,000 x 64, m=16, nlist=128, nprobe=8, k=10, rerank 100
    "pqtool": (dict(n=10000, d=64), dict(m=16, nlist=128, nprobe=8, k=10, rerank=100, queries=400)),
    # another shape: more, shorter vectors, 6-bit codes, wider probe
    "d32-nbits6": (dict(n=20000, d=32), dict(m=8, nbits=6, nlist=64, nprobe=4, k=5, rerank=50, queries=400)),
    # inner product and cosine, FAISS METRIC_INNER_PRODUCT
    "ip": (dict(n=10000, d=48, centres=400), dict(m=12, nlist=64, nprobe=6, k=10, rerank=30, queries=400, metric="ip")),
    "cosine": (
        dict(n=10000, d=48, centres=400),
        dict(m=12, nlist=64, nprobe=6, k=10, rerank=30, queries=400, metric="cosine"),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_recall_matches_faiss(case):
    data_kw, cfg_kw = CASES[case]
    cfg = gpupq.EstimateConfig(**cfg_kw)
    if "centres" in data_kw:  # many small clusters: less run-to-run k-means variance
        dataset = Dataset(clustered(data_kw["n"], data_kw["d"], seed=1, centres=data_kw["centres"]), case)
    else:
        dataset = gpupq.make_synthetic(data_kw["n"], data_kw["d"], seed=0)
    ours = gpupq.estimate(dataset, cfg, backends="numpy").results[0]
    raw, rr, _ = faiss_recall(dataset, cfg)
    assert abs(ours.recall.mean - raw) <= 0.03, (ours.recall.mean, raw)
    assert abs(ours.recall_rerank.mean - rr) <= 0.03, (ours.recall_rerank.mean, rr)
    assert 0.2 < raw < 1.0  # a setting where recall is informative, not saturated


def test_recall_matches_faiss_on_real_shaped_data():
    """Non-synthetic-generator data: anisotropic clusters (different scales per dimension)."""
    rng = np.random.default_rng(3)
    x = clustered(12000, 64, seed=3, centres=500) * rng.uniform(0.2, 3.0, size=64).astype(np.float32)
    cfg = gpupq.EstimateConfig(m=16, nlist=100, nprobe=10, k=10, rerank=20, queries=400)
    dataset = Dataset(x, "anisotropic")
    ours = gpupq.estimate(dataset, cfg, backends="numpy").results[0]
    raw, rr, _ = faiss_recall(dataset, cfg)
    assert abs(ours.recall.mean - raw) <= 0.03, (ours.recall.mean, raw)
    assert abs(ours.recall_rerank.mean - rr) <= 0.03, (ours.recall_rerank.mean, rr)


@pytest.mark.parametrize(
    "n,d,nlist,m,nbits,metric",
    [
        (5000, 64, 128, 16, 8, "l2"),
        (8000, 32, 64, 8, 4, "l2"),
        (8000, 48, 32, 12, 6, "ip"),
        (6000, 40, 50, 5, 5, "l2"),
        (4000, 96, 16, 32, 7, "l2"),
    ],
)
def test_memory_bill_matches_serialize_index(n, d, nlist, m, nbits, metric):
    x = clustered(n, d, seed=4, centres=40)
    q = faiss.IndexFlatL2(d) if metric == "l2" else faiss.IndexFlatIP(d)
    fm = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexIVFPQ(q, d, nlist, m, nbits, fm)
    index.train(x)
    index.add(x)
    serialized = len(faiss.serialize_index(index))
    bill = memory_bill(n, d, nlist, m, nbits, metric)
    assert abs(bill.index_serialized - serialized) / serialized < 0.01, (bill.index_serialized, serialized)
    assert bill.code_size == index.code_size
    # the precomputed table FAISS builds for L2 search, and none for inner product
    assert bill.precomputed_table == index.precomputed_table.size() * 4


def _exact(xb: np.ndarray, xq: np.ndarray, k: int, ids: np.ndarray) -> np.ndarray:
    """(nq, k) row ids of the exact L2 neighbours, by FAISS's flat index."""
    flat = faiss.IndexFlatL2(xb.shape[1])
    flat.add(xb)
    return ids[flat.search(xq, k)[1]]


@pytest.mark.parametrize("store", ["fp32", "fp16", "sq8"])
def test_rerank_store_matches_faiss_index_refine(store):
    """Re-ranking from a fp32 / fp16 / sq8 store: recall as FAISS IndexRefine gives it, and the
    store's bytes as its refine index serializes them."""
    x = clustered(12000, 32, seed=8, centres=300)
    dataset = Dataset(x, "refine")
    cfg = gpupq.EstimateConfig(m=8, nlist=64, nprobe=8, k=10, rerank=20, rerank_store=store, queries=400)
    ours = gpupq.estimate(dataset, cfg, backends="numpy").results[0]

    split = hold_out(dataset, cfg.queries, cfg.seed)
    ids = split.base_ids()
    xb, xq = dataset.rows(ids), split.queries
    base = faiss.IndexIVFPQ(faiss.IndexFlatL2(32), 32, cfg.nlist, cfg.m, cfg.nbits)
    refine = {
        "fp32": lambda: faiss.IndexFlatL2(32),
        "fp16": lambda: faiss.IndexScalarQuantizer(32, faiss.ScalarQuantizer.QT_fp16),
        "sq8": lambda: faiss.IndexScalarQuantizer(32, faiss.ScalarQuantizer.QT_8bit),
    }[store]()
    index = faiss.IndexRefine(base, refine)
    index.train(xb)
    index.add(xb)
    index.k_factor = cfg.rerank / cfg.k
    faiss.extract_index_ivf(base).nprobe = cfg.nprobe
    _, found = index.search(xq, cfg.k)
    theirs = recall_at_k(ids[found], _exact(xb, xq, cfg.k, ids), cfg.k).mean
    assert abs(ours.recall_rerank.mean - theirs) <= 0.03, (ours.recall_rerank.mean, theirs)
    refine_bytes = len(faiss.serialize_index(refine))
    assert abs(ours.memory.rerank_store - refine_bytes) / refine_bytes < 0.01, (ours.memory.rerank_store, refine_bytes)


def test_sq8_round_trip_matches_faiss():
    from gpupq.refine import RerankStore

    x = clustered(3000, 24, seed=9)
    sq = faiss.IndexScalarQuantizer(24, faiss.ScalarQuantizer.QT_8bit)
    sq.train(x)
    sq.add(x)
    ours = RerankStore("sq8").fit(x).round_trip(x)
    np.testing.assert_allclose(ours, sq.reconstruct_n(0, 3000), rtol=1e-5, atol=1e-5)
    fp16 = RerankStore("fp16").round_trip(x)
    f16 = faiss.IndexScalarQuantizer(24, faiss.ScalarQuantizer.QT_fp16)
    f16.train(x)
    f16.add(x)
    # FAISS's software float->half rounds a few halfway cases the other way: one half-ulp apart
    np.testing.assert_allclose(fp16, f16.reconstruct_n(0, 3000), rtol=2**-10, atol=2**-24)


def _correlated(n: int, d: int, seed: int) -> np.ndarray:
    """Clustered data mixed by a random linear map: correlated dimensions, where OPQ pays."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)).astype(np.float32) * rng.uniform(0.1, 2.0, size=d).astype(np.float32)
    return clustered(n, d, seed=seed, centres=300) @ mix


def test_opq_matches_faiss():
    """--opq against FAISS's "OPQ{m},IVF{nlist},PQ{m}": recall and serialized size."""
    x = _correlated(10000, 32, seed=10)
    dataset = Dataset(x, "correlated")
    cfg = gpupq.EstimateConfig(m=8, nlist=64, nprobe=6, k=10, rerank=20, queries=400, opq=True)
    ours = gpupq.estimate(dataset, cfg, backends="numpy").results[0]

    split = hold_out(dataset, cfg.queries, cfg.seed)
    ids = split.base_ids()
    xb, xq = dataset.rows(ids), split.queries
    index = faiss.index_factory(32, f"OPQ{cfg.m},IVF{cfg.nlist},PQ{cfg.m}np")
    index.train(xb)
    index.add(xb)
    faiss.extract_index_ivf(index).nprobe = cfg.nprobe
    _, found = index.search(xq, cfg.k)
    theirs = recall_at_k(ids[found], _exact(xb, xq, cfg.k, ids), cfg.k).mean
    assert abs(ours.recall.mean - theirs) <= 0.03, (ours.recall.mean, theirs)
    serialized = len(faiss.serialize_index(index))
    assert ours.memory.opq_matrix == 32 * 32 * 4
    assert abs(ours.memory.index_serialized - serialized) / serialized < 0.01, (
        ours.memory.index_serialized,
        serialized,
    )
    # and OPQ earns its keep here: more raw recall than the same index without it
    plain = gpupq.estimate(dataset, gpupq.EstimateConfig(**{**cfg.__dict__, "opq": False}), "numpy").results[0]
    assert ours.recall.mean > plain.recall.mean
