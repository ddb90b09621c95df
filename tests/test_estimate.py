import json
from dataclasses import replace

import numpy as np
import pytest

import gpupq
from gpupq.backends import get_backends
from gpupq.errors import GpupqError
from gpupq.io import Dataset
from gpupq.timing import MAX_RUNS

from .helpers import clustered

SMALL = dict(m=8, nlist=32, nprobe=4, nbits=6, k=10, rerank=40, queries=60)


def test_result_is_complete_and_consistent(backend):
    """Every field of the result on every backend, against values worked out by hand (code
    sizes, counts, the bill's sums): catches a field left out, mislabelled or mis-summed."""
    ds = gpupq.make_synthetic(6000, 32, seed=1)
    res = gpupq.estimate(ds, gpupq.EstimateConfig(**SMALL), backends=[backend])
    assert (res.n, res.d, res.n_base, res.n_queries) == (6000, 32, 5940, 60)
    r = res.results[0]
    assert r.backend == backend.name
    for rec in (r.recall, r.recall_rerank):
        assert 0.0 <= rec.ci95_low <= rec.mean <= rec.ci95_high <= 1.0
        assert rec.queries == 60
    assert r.recall_rerank.mean >= r.recall.mean
    mem = r.memory
    assert mem.codes == 5940 * 6  # ceil(8 * 6 / 8) bytes per vector
    assert mem.vectors_fp32 == 5940 * 32 * 4
    assert mem.rerank_store == mem.vectors_fp32
    # worked out by hand: codes, ids, centroids, codebooks, list sizes; the L2 table nlist·m·2^nbits·4
    by_hand = 5940 * 6 + 5940 * 8 + 32 * 32 * 4 + 64 * 32 * 4 + 32 * 8
    assert (mem.index_serialized, mem.precomputed_table) == (by_hand, 32 * 8 * 64 * 4)
    assert mem.index_in_memory == by_hand + 32 * 8 * 64 * 4
    assert r.lists_probed_fraction == 4 / 32
    assert 0 < r.vectors_scanned_fraction < 1
    assert r.vectors_scanned_per_query == pytest.approx(r.vectors_scanned_fraction * 5940)
    t = r.timings
    assert min(t.ground_truth_s, t.train_s, t.add_s, t.search_s, t.search_rerank_s) > 0
    assert t.add_vectors_per_s == pytest.approx(5940 / t.add_s)
    assert t.search_queries_per_s == pytest.approx(60 / t.search_s)


def test_backends_agree_with_numpy(other_backend):
    """Every other backend reaches the recall numpy reaches on the same data and split: catches
    a backend-specific bug anywhere in the pipeline (scan strategy, CuPy class, chunking)."""
    ds = gpupq.make_synthetic(8000, 32, seed=2)
    cfg = gpupq.EstimateConfig(**{**SMALL, "queries": 200})
    ours = gpupq.estimate(ds, cfg, backends=[other_backend]).results[0]
    ref = gpupq.estimate(ds, cfg, backends="numpy").results[0]
    assert abs(ours.recall.mean - ref.recall.mean) <= 0.03
    assert abs(ours.recall_rerank.mean - ref.recall_rerank.mean) <= 0.03
    assert ours.vectors_scanned_fraction == pytest.approx(ref.vectors_scanned_fraction, rel=0.05)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_everything_probed_and_reranked_is_exact(metric):
    x = clustered(2000, 16, seed=3)
    cfg = gpupq.EstimateConfig(m=4, nlist=8, nprobe=8, nbits=4, k=5, rerank=1950, queries=50, metric=metric)
    res = gpupq.estimate(Dataset(x, "x"), cfg, "numpy").results[0]
    assert res.recall_rerank.mean == 1.0
    assert res.vectors_scanned_fraction == 1.0


def test_all_runs_every_usable_backend():
    res = gpupq.estimate(gpupq.make_synthetic(3000, 16), gpupq.EstimateConfig(**{**SMALL, "m": 4}), "all")
    assert [r.backend for r in res.results] == [b.name for b in get_backends("all")]


def test_rerank_off():
    res = gpupq.estimate(
        gpupq.make_synthetic(3000, 16), gpupq.EstimateConfig(**{**SMALL, "m": 4, "rerank": 0}), "numpy"
    )
    r = res.results[0]
    assert r.recall_rerank is None and r.memory.rerank_store == 0 and r.timings.search_rerank_s is None
    assert res.to_dict()["results"][0]["recall_rerank"] is None


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(nprobe=64), "--nprobe 64 must be between 1 and --nlist 32"),
        (dict(k=0), "-k must be at least 1"),
        (dict(rerank=5), "--rerank 5 re-ranks fewer candidates than the 10 neighbours"),
        (dict(nbits=9), "--nbits must be between 4 and 8"),
        (dict(m=7), "valid m: 1, 2, 4, 8, 16, 32"),
        (dict(queries=3000), "leaves no base"),
        (dict(k=2990, rerank=0, queries=20), "-k 2990 is larger than the base"),
        (dict(nlist=2990, nprobe=1, queries=20), "fewer than --nlist 2990"),
        (dict(metric="hamming"), "not one of l2, ip, cosine"),
    ],
)
def test_bad_settings(change, message):
    with pytest.raises(GpupqError, match=message):
        gpupq.estimate(gpupq.make_synthetic(3000, 32), gpupq.EstimateConfig(**{**SMALL, **change}), "numpy")


def test_too_few_points_for_pq():
    with pytest.raises(GpupqError, match="fewer than the 2\\^nbits=256 PQ centroids"):
        gpupq.estimate(gpupq.make_synthetic(200, 32), gpupq.EstimateConfig(m=4, nlist=4, nprobe=1, queries=10), "numpy")


def test_warning_below_39_points_per_centroid():
    res = gpupq.estimate(gpupq.make_synthetic(3000, 16), gpupq.EstimateConfig(m=4, nlist=16, nprobe=2), "numpy")
    assert any("PQ training" in w and "39 per centroid" in w for w in res.warnings)


def test_json_dict_is_plain():
    import json

    res = gpupq.estimate(gpupq.make_synthetic(3000, 16), gpupq.EstimateConfig(**{**SMALL, "m": 4}), "numpy")
    d = json.loads(json.dumps(res.to_dict()))
    assert d["results"][0]["memory"]["codes"] == res.results[0].memory.codes
    assert np.isclose(d["results"][0]["recall"]["mean"], res.results[0].recall.mean)


def test_chunk_size_does_not_change_the_estimate(tmp_path, monkeypatch):
    """Every pass over the base is chunked; many small chunks give the same answer as one."""
    import gpupq.io.dataset

    path = tmp_path / "x.npy"
    np.save(path, clustered(6000, 16, seed=5, centres=100))
    cfg = gpupq.EstimateConfig(m=4, nlist=32, nprobe=4, nbits=6, k=10, rerank=40, queries=80)
    whole = gpupq.estimate(gpupq.load_npy(path), cfg, "numpy").results[0]
    monkeypatch.setattr(gpupq.io.dataset, "DEFAULT_CHUNK_BYTES", 256 * 16 * 4)  # 256-row chunks
    chunked = gpupq.estimate(gpupq.load_npy(path), cfg, "numpy").results[0]
    assert chunked.recall.mean == whole.recall.mean
    assert chunked.recall_rerank.mean == whole.recall_rerank.mean
    assert chunked.vectors_scanned_per_query == whole.vectors_scanned_per_query


# ---------------------------------------------------------------------------- ties


def _duplicated(distinct: int, copies: int, d: int = 16) -> Dataset:
    """``distinct`` clustered vectors, each repeated ``copies`` times (rows shuffled)."""
    x = np.repeat(clustered(distinct, d, seed=12, centres=8), copies, axis=0)
    return Dataset(x[np.random.default_rng(0).permutation(len(x))], "duplicated")


def test_duplicates_do_not_punish_a_right_answer():
    """30 distinct vectors × 100 copies: every query's 10 nearest are copies of one vector, and
    which copies the ground truth lists is a tie-break (the smallest ids, as FAISS keeps them).
    Recall by distance sees the right answer whichever copies a search returns. The ties are
    counted and warned about, with the id figure."""
    ds = _duplicated(30, 100)
    cfg = gpupq.EstimateConfig(m=4, nlist=8, nprobe=2, nbits=4, k=10, rerank=200, queries=50)
    res = gpupq.estimate(ds, cfg, "numpy")
    r = res.results[0]
    assert r.recall_rerank.mean == 1.0
    assert r.recall.mean >= 0.9
    assert res.tied_queries == 50
    assert any("50 of 50 queries have ties" in w and "by id" in w for w in res.warnings)
    assert res.to_dict()["tied_queries"] == 50


def test_identical_vectors_give_full_recall():
    """3,000 copies of one vector: every neighbour is exact, so recall is 1.0 raw and re-ranked."""
    x = np.tile(clustered(1, 8, seed=3), (3000, 1))
    cfg = gpupq.EstimateConfig(m=2, nlist=4, nprobe=1, nbits=4, k=10, rerank=20, queries=20)
    res = gpupq.estimate(Dataset(x, "same"), cfg, "numpy")
    r = res.results[0]
    assert (r.recall.mean, r.recall_rerank.mean) == (1.0, 1.0)
    assert res.tied_queries == 20


def test_no_ties_no_warning_and_id_recall_agrees():
    """On clustered data without duplicates, the two measures agree and nothing is warned."""
    res = gpupq.estimate(gpupq.make_synthetic(6000, 32, seed=1), gpupq.EstimateConfig(**SMALL), "numpy")
    r = res.results[0]
    assert res.tied_queries == 0
    assert not any("ties" in w for w in res.warnings)
    assert r.recall.by_id == pytest.approx(r.recall.mean, abs=0.01)


# ---------------------------------------------------------------------------- metric agreement


def test_dataset_metric_is_used_when_the_config_names_none(tmp_path):
    """load_vectors(path, metric="cosine") with a default EstimateConfig estimates cosine."""
    path = tmp_path / "x.npy"
    np.save(path, clustered(3000, 16, seed=5))
    res = gpupq.estimate(gpupq.load_vectors(path, metric="cosine"), gpupq.EstimateConfig(**{**SMALL, "m": 4}), "numpy")
    assert res.config.metric == "cosine" and res.to_dict()["params"]["metric"] == "cosine"
    assert res.results[0].memory.precomputed_table == 0  # an inner-product index
    assert res.deploy["faiss_index_factory"].startswith("L2norm,")


def test_contradicting_metrics_are_refused(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, clustered(3000, 16, seed=5))
    with pytest.raises(GpupqError, match="opened with metric cosine but the run asks for l2"):
        gpupq.estimate(gpupq.load_vectors(path, metric="cosine"), gpupq.EstimateConfig(metric="l2"), "numpy")


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(seed=-1), "--seed must be between 0 and"),
        (dict(threads=0), "--threads must be at least 1"),
        (dict(min_time=-1.0), "--min-time must be between 0 and 600"),
    ],
)
def test_bad_run_settings(change, message):
    with pytest.raises(GpupqError, match=message):
        gpupq.estimate(gpupq.make_synthetic(3000, 32), gpupq.EstimateConfig(**{**SMALL, **change}), "numpy")


# ---------------------------------------------------------------------------- timing


def test_phases_are_repeated_and_reported_as_medians():
    """With min_time > 0 the short phases run several times; each figure is the median run, lies
    between the fastest and slowest, and the runs are in the JSON."""
    res = gpupq.estimate(
        gpupq.make_synthetic(3000, 16), gpupq.EstimateConfig(**{**SMALL, "m": 4, "min_time": 0.05}), "numpy"
    )
    t = res.results[0].timings
    for phase, seconds in (
        ("ground_truth", t.ground_truth_s),
        ("train", t.train_s),
        ("add", t.add_s),
        ("search", t.search_s),
        ("search_rerank", t.search_rerank_s),
    ):
        runs = t.runs[phase].seconds
        assert sum(runs) >= 0.05 or len(runs) == MAX_RUNS, phase
        assert min(runs) <= seconds <= max(runs)
        assert seconds == pytest.approx(float(np.median(runs)))
    assert len(t.runs["search"].seconds) > 1
    out = res.to_dict()["results"][0]["timings"]["runs"]
    assert set(out) == {"ground_truth", "train", "add", "search", "search_rerank"}
    assert out["search"]["runs"] == len(t.runs["search"].seconds)


def test_repeated_runs_do_not_change_the_figures():
    """Timing repeats re-run the same work: recall, memory and scanned counts are those of one run."""
    cfg = gpupq.EstimateConfig(**{**SMALL, "m": 4})
    one = gpupq.estimate(gpupq.make_synthetic(3000, 16), cfg, "numpy").results[0]
    many = gpupq.estimate(gpupq.make_synthetic(3000, 16), replace(cfg, min_time=0.05), "numpy").results[0]
    assert (one.recall, one.recall_rerank) == (many.recall, many.recall_rerank)
    assert one.vectors_scanned_per_query == many.vectors_scanned_per_query
    assert len(many.timings.runs["add"].seconds) > 1


def test_threads_and_blas_are_reported():
    cfg = gpupq.EstimateConfig(**{**SMALL, "m": 4, "threads": 1})
    res = gpupq.estimate(gpupq.make_synthetic(3000, 16), cfg, "numpy")
    assert res.threads == 1
    d = res.to_dict()
    assert d["threads"] == 1 and d["params"]["threads"] == 1
    assert d["blas"] and "unknown" not in d["blas"]


def test_single_query_latency_is_measured_as_deployed():
    """One query at a time, re-ranked when the estimate re-ranks: percentiles in order, over the
    first 200 queries (or all of them)."""
    res = gpupq.estimate(gpupq.make_synthetic(3000, 16), gpupq.EstimateConfig(**{**SMALL, "m": 4}), "numpy")
    lat = res.results[0].timings.latency
    assert lat is not None and lat.queries == 60
    assert 0 < lat.p50 <= lat.p95 <= lat.p99
    assert res.to_dict()["results"][0]["timings"]["latency"]["p99_s"] == lat.p99


def _without_timings(d):
    """A result's JSON less what a clock or the machine decides (times, rates, device names)."""
    clock = ("timings", "seconds", "_per_s", "latency", "device", "host", "elapsed", "started", "created", "threads")
    if isinstance(d, dict):
        return {k: _without_timings(v) for k, v in d.items() if not any(c in k for c in clock) and not k.endswith("_s")}
    if isinstance(d, list):
        return [_without_timings(v) for v in d]
    return d


def test_the_same_seed_gives_the_same_json_on_every_backend(backend):
    """Two runs with one seed on one backend agree on everything but timings, to the last bit:
    training (the early stop compares float32 objectives exactly, so centroid sums must repeat
    bit for bit: on a GPU, no atomics), the split, recall, the bill. Timing fields are dropped
    first; what remains must still hold the recall and the bill, so this cannot pass empty."""
    ds = gpupq.make_synthetic(4000, 32, seed=7)
    runs = [gpupq.estimate(ds, gpupq.EstimateConfig(**SMALL), backends=[backend]).to_dict() for _ in range(2)]
    a, b = (_without_timings(json.loads(json.dumps(r))) for r in runs)
    assert a == b
    assert a["results"][0]["recall"]["mean"] > 0.1 and a["results"][0]["memory"]["codes"] > 0
