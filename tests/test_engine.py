"""The workbench (gpupq/engine.py): one scan read at every nprobe and re-rank depth equals separate
searches, points timed in turn until --min-time, the re-rank store resident on a GPU, and phases
retried with smaller chunks after running out of memory."""

from __future__ import annotations

import numpy as np
import pytest

from gpupq.refine import rerank
from gpupq.settings import Build

from .helpers import _session


def test_every_nprobe_and_depth_from_one_scan_equals_separate_searches(backend):
    """The one-scan prefix and the one-ranking re-rank give the ids a search at that nprobe and
    depth gives, on every backend's scan strategy, ties included (m=4 codes collide often)."""
    _ds, _cfg, session = _session(backend, n=4000, d=16)
    bench = session.bench
    build = Build(nlist=32, m=4)
    ps = [1, 3, 8, 32]
    curve = bench.curve(build, ps, depth=60)
    index = bench.built(build).index
    q = bench.queries
    fetch = bench.fetcher("sq8")
    for p in ps:
        _, ids, stats = index.search(q, 60, p)
        np.testing.assert_array_equal(backend.to_numpy(curve.ranked[p]), backend.to_numpy(ids))
        np.testing.assert_array_equal(curve.scanned[p], stats.scanned)
        _, raw_ids, _ = index.search(q, 10, p)  # a raw search keeps only k per list: same top-k
        np.testing.assert_array_equal(backend.to_numpy(curve.ranked[p][:, :10]), backend.to_numpy(raw_ids))
        truth = bench.truth(10)
        points = bench.points(build, curve, p, 10, [(20, "sq8"), (60, "sq8")], truth)
        for r in (20, 60):
            _, sep_cand, _ = index.search(q, r, p)
            _, sep = rerank(backend, q, sep_cand, fetch, 10, "l2")
            pt = next(x for x in points if x.setting.rerank == r)
            assert pt.recall == truth.recall(backend.to_numpy(sep))
    session.close()


def test_points_are_timed_interleaved_until_min_time(monkeypatch):
    """With --min-time each point runs until its runs cover it, the points of a build in turn."""
    _ds, _cfg, session = _session()
    order = []
    real = session.bench.search_fn

    def spy(build, setting, k):
        run = real(build, setting, k)

        def counted():
            order.append(setting.nprobe)
            return run()

        return counted

    monkeypatch.setattr(session.bench, "search_fn", spy)
    monkeypatch.setattr("gpupq.timing.MAX_RUNS", 3)
    pts = session.bench.points(Build(16, 8), session.bench.curve(Build(16, 8), [1, 4], 10), 1, 10, [],
                               session.bench.truth(10))  # fmt: skip
    pts += session.bench.points(Build(16, 8), session.bench.curve(Build(16, 8), [4], 10), 4, 10, [],
                                session.bench.truth(10))  # fmt: skip
    session.bench.time_points(pts, 10, min_time=60.0)  # never reached: MAX_RUNS ends it
    assert order == [1, 4, 1, 4, 1, 4]
    assert [len(p.runs.seconds) for p in pts] == [3, 3]


@pytest.mark.parametrize("kind", ["fp32", "fp16", "sq8"])
def test_resident_store_scores_equal_host_fetch(monkeypatch, numpy_backend, kind):
    """With room for it the re-rank store is encoded once into the backend's memory and
    candidates are gathered there: its scores equal the path without room (rows read from the
    input, round-tripped) bit for bit, -1 candidates included; with no room it falls back to
    reading rows. Runs the CuPy backend class over the stand-in."""
    from gpupq.engine import Workbench
    from gpupq.io import hold_out, make_synthetic
    from gpupq.refine import DeviceRows, candidate_scores

    from . import fake_cupy
    from .helpers import install_fake_cupy

    be = install_fake_cupy(monkeypatch)
    ds = make_synthetic(3000, 16, seed=0)
    split = hold_out(ds, 40, 0)
    rng = np.random.default_rng(0)
    cand = rng.choice(split.base_ids(), size=(40, 30))
    cand[:, -3:] = -1
    dev, host = Workbench(be, ds, split), Workbench(numpy_backend, ds, split)
    monkeypatch.setattr(numpy_backend, "free_memory", lambda: 1 << 10)  # the host reads rows as asked
    assert not isinstance(host.fetcher(kind), DeviceRows)
    rows = dev.fetcher(kind)
    assert isinstance(rows, DeviceRows)
    got = candidate_scores(be, be.asarray(split.queries), be.asarray(cand), rows, "l2")
    want = candidate_scores(numpy_backend, split.queries, cand, host.fetcher(kind), "l2")
    np.testing.assert_array_equal(be.to_numpy(got), want)
    assert np.isinf(want[:, -3:]).all()
    fake_cupy.set_free_memory(1 << 10)  # no room: rows are read on the host as asked
    assert not isinstance(Workbench(be, ds, split).fetcher(kind), DeviceRows)
    fake_cupy.set_free_memory(None)
    real_empty = fake_cupy.empty

    def no_room(*a, **kw):
        raise fake_cupy.OutOfMemoryError("out of memory allocating the store")

    monkeypatch.setattr(fake_cupy, "empty", no_room)  # room on paper, none in fact: same fallback
    fetch = Workbench(be, ds, split).fetcher(kind)
    monkeypatch.setattr(fake_cupy, "empty", real_empty)
    assert not isinstance(fetch, DeviceRows)
    got = candidate_scores(be, be.asarray(split.queries), be.asarray(cand), fetch, "l2")
    np.testing.assert_array_equal(be.to_numpy(got), want)


def test_out_of_memory_retries_with_smaller_chunks(backend, monkeypatch):
    """A phase that runs out of memory is run again from scratch with work chunks 4x smaller
    (the estimate then completes, with the same answer); one that keeps failing ends in a
    one-line GpupqError, not a traceback. Each backend raises its own out-of-memory error
    (CuPy's OutOfMemoryError on the stand-in)."""
    import gpupq.engine as engine_mod
    from gpupq.engine import Workbench
    from gpupq.errors import GpupqError
    from gpupq.io import hold_out, make_synthetic

    ds = make_synthetic(2000, 16, seed=0)
    split = hold_out(ds, 20, 0)
    want = Workbench(backend, ds, split).truth(10).ids.copy()
    oom = backend.out_of_memory_errors()[0]
    full = backend.work_bytes()
    real = engine_mod.exact_knn
    calls = []

    def flaky(be, *a, **kw):
        calls.append(be.work_bytes())
        if be.work_bytes() >= full:  # fails until the chunks shrink
            raise oom("out of memory allocating 1,073,741,824 bytes")
        return real(be, *a, **kw)

    monkeypatch.setattr(engine_mod, "exact_knn", flaky)
    got = Workbench(backend, ds, split).truth(10).ids
    np.testing.assert_array_equal(got, want)
    assert len(calls) == 2 and calls[1] * 4 <= calls[0] and backend.shrink == 1  # the next phase: full size

    def always(be, *a, **kw):
        raise oom("out of memory")

    monkeypatch.setattr(engine_mod, "exact_knn", always)
    with pytest.raises(GpupqError, match="ground truth ran out of memory") as err:
        Workbench(backend, ds, split).truth(10)
    assert "\n" not in str(err.value)


def test_host_holds_a_store_that_fits_as_a_deployment_would(numpy_backend, monkeypatch):
    """On the host a store within a quarter of free memory is encoded once and kept (as FAISS's
    IndexRefine holds it), not re-read and re-encoded for every re-ranking; above that, rows are
    read as asked, so memory stays bounded."""
    from gpupq.engine import Workbench
    from gpupq.io import hold_out, make_synthetic
    from gpupq.refine import DeviceRows

    ds = make_synthetic(2000, 16, seed=0)
    split = hold_out(ds, 20, 0)
    bench = Workbench(numpy_backend, ds, split)
    rows = bench.fetcher("sq8")
    assert isinstance(rows, DeviceRows) and rows.codes.dtype == np.uint8 and rows.codes.shape == (2000, 16)
    assert bench.fetcher("sq8") is rows  # encoded once
    monkeypatch.setattr(numpy_backend, "free_memory", lambda: 4 * 2000 * 16 * 2 - 4)  # fp16: one byte short
    assert not isinstance(Workbench(numpy_backend, ds, split).fetcher("fp16"), DeviceRows)


def test_builds_sharing_their_lists_are_the_builds_made_alone(backend, monkeypatch):
    """With ``share_lists`` (recommend), each vector's list is assigned once per coarse quantizer,
    not once per build: the codebooks, codes and lists are bit for bit those of builds that
    assign their own, OPQ (a quantizer per m) and drafts included. PQ samples capped at 16 points
    a centroid (FAISS: 256) so that at this size nbits 6 trains on a prefix of nbits 8's sample:
    the lists known for a smaller sample are assigned again for a larger one (6 before 8), and a
    larger one's are cut for a smaller one (8 before 6)."""
    from gpupq import settings
    from gpupq.ivf import IVFPQIndex

    monkeypatch.setattr(settings, "MAX_POINTS_PER_CENTROID", 16)
    builds = [Build(32, 8, 6), Build(32, 4, 8), Build(32, 4, 6), Build(32, 4, 8, opq=True), Build(32, 8, 8, opq=True)]
    calls = []
    real = IVFPQIndex.coarse_assign
    monkeypatch.setattr(IVFPQIndex, "coarse_assign", lambda self, x: calls.append(x.shape[0]) or real(self, x))
    made = {}
    for share in (False, True):
        _ds, _cfg, session = _session(backend, n=2500, d=16)
        with session:
            bench = session.bench
            bench.share_lists = share
            calls.clear()
            for b in builds:
                for draft in (True, False):
                    index = bench.built(b, draft).index
                    made[(share, b, draft)] = [
                        backend.to_numpy(a) for a in (index.pq.codebooks, index.codes, index.ids, index.offsets)
                    ]
            assigned = sum(calls)
        n_base = session.split.n_base
        assert n_base < 16 * 256  # nbits 8's sample: all of the base; nbits 6's: its first 1,024
        if share:  # the base once per quantizer (3: one plain, two rotated), and their samples: the
            # plain one's twice (1,024 for nbits 6, then all for nbits 8), the rotated ones' once
            assert assigned == 3 * n_base + (16 * 64 + n_base) + 2 * n_base, assigned
        else:  # every build and draft: 10 of them
            assert assigned >= 10 * n_base
    for (share, b, draft), arrays in made.items():
        if share:
            for got, want in zip(arrays, made[(False, b, draft)], strict=True):
                np.testing.assert_array_equal(got, want)
