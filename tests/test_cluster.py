"""Work in shards (gpupq.cluster): the shard plan, and the exact ground truth merged from per-shard
top-k, equal bit for bit in this process and on Dask workers (also after a worker is killed)."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from gpupq.backends import NumpyBackend
from gpupq.cluster import InProcess, Source, plan_shards, sharded_ground_truth
from gpupq.errors import GpupqError
from gpupq.io import Split, load_vectors
from gpupq.knn import exact_knn

from .helpers import clustered, refused

CUTS = (0, 900, 901, 2400, 4000)


def _shards(folder, x, cuts=CUTS):
    folder.mkdir()
    for i in range(len(cuts) - 1):
        np.save(folder / f"s{i:02d}.npy", x[cuts[i] : cuts[i + 1]])
    return str(folder)


def _tie_heavy(seed=0):
    """Integer-valued rows (products exact in float32, whatever their shape), each row twice in
    different shards: every neighbour has a tie, settled by id."""
    rng = np.random.default_rng(seed)
    half = rng.integers(-3, 4, size=(2000, 12)).astype(np.float32)
    return np.concatenate([half, half[::-1]])


def _one_pass(ds, qids, k, metric):
    """Today's path: the whole base in one pass of chunks that cross the files."""
    be = NumpyBackend()
    split = Split(ds, np.sort(qids))
    return exact_knn(be, split.queries, split.iter_base(mark_queries=True), k, metric)


def test_plan_one_range_a_file_split_and_grouped(tmp_path):
    ds = load_vectors(_shards(tmp_path / "s", clustered(4000, 8)))
    assert plan_shards(ds).ranges.tolist() == [[0, 900], [900, 901], [901, 2400], [2400, 4000]]
    # 1,000: the first two files grouped, the long ones split
    assert plan_shards(ds, 1000).ranges.tolist() == [[0, 901], [901, 1901], [1901, 2400], [2400, 3400], [3400, 4000]]
    assert plan_shards(ds, 10**9).ranges.tolist() == [[0, 4000]]
    one = load_vectors(tmp_path / "s" / "s00.npy")
    assert plan_shards(one, 400).ranges.tolist() == [[0, 400], [400, 800], [800, 900]]
    with pytest.raises(GpupqError, match="--shard-rows"):
        plan_shards(ds, 0)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("shard_rows", [None, 700])
def test_sharded_ground_truth_is_the_one_pass_on_tie_heavy_data(tmp_path, metric, shard_rows):
    folder = _shards(tmp_path / "s", _tie_heavy())
    ds = load_vectors(folder, metric=metric)
    qids = np.array([3999, 0, 901, 1500, 2400, 3000])  # held out, some at shard edges
    index_metric = "ip" if metric == "cosine" else metric
    want_d, want_i = _one_pass(ds, qids, 15, index_metric)
    queries = ds.rows(np.sort(qids))
    got_d, got_i = sharded_ground_truth(
        InProcess(), Source.of(ds), plan_shards(ds, shard_rows), queries, qids, 15, index_metric
    )
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_array_equal(got_d, want_d)
    assert not np.isin(got_i, qids).any()  # held-out rows are not their own neighbours
    # each row has its twin: the tie is real, and the smaller id comes first
    same = got_d[:, :-1] == got_d[:, 1:]
    assert same.any() and (got_i[:, :-1][same] < got_i[:, 1:][same]).all()


def test_sharded_ground_truth_past_the_base(tmp_path):
    """k above the base: -1 and inf past it, as in one pass."""
    x = clustered(30, 6)
    folder = _shards(tmp_path / "s", x, (0, 10, 30))
    ds = load_vectors(folder)
    qids = np.array([4, 20])
    got_d, got_i = sharded_ground_truth(InProcess(), Source.of(ds), plan_shards(ds), ds.rows(qids), qids, 40, "l2")
    assert (got_i[:, 28:] == -1).all() and np.isinf(got_d[:, 28:]).all() and (got_i[:, :28] >= 0).all()


@pytest.fixture(scope="module")
def threads_cluster():
    pytest.importorskip("distributed")
    from gpupq.cluster import DaskExecutor

    with DaskExecutor(2, processes=False) as ex:
        yield ex


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_dask_equals_in_process_bit_for_bit(tmp_path, threads_cluster, metric):
    x = clustered(4000, 24, seed=5)
    folder = _shards(tmp_path / "s", x)
    ds = load_vectors(folder, metric=metric)
    qids = np.array([5, 950, 3000])
    index_metric = "ip" if metric == "cosine" else metric
    plan = plan_shards(ds, 800)
    args = (Source.of(ds), plan, ds.rows(qids), qids, 10, index_metric)
    seen: dict[str, list[int]] = {"here": [], "there": []}
    here = sharded_ground_truth(InProcess(2), *args, progress=seen["here"].append)
    there = sharded_ground_truth(threads_cluster, *args, progress=seen["there"].append)
    for rows in seen.values():  # one call a shard, with its rows
        assert sorted(rows) == sorted(int(b - a) for a, b in plan.ranges)
    np.testing.assert_array_equal(there[1], here[1])
    np.testing.assert_array_equal(there[0], here[0])
    # tie-free data: the same neighbours as one pass over the stacked rows
    np.testing.assert_array_equal(here[1], _one_pass(ds, qids, 10, index_metric)[1])


def test_worker_killed_mid_run_changes_nothing(tmp_path):
    """A worker process killed while it holds a task: the nanny restarts it, the scheduler runs
    the task again from the files, and the result is the one computed here."""
    pytest.importorskip("distributed")
    from gpupq.cluster import DaskExecutor

    x = clustered(24000, 64, seed=7)
    folder = _shards(tmp_path / "s", x, tuple(range(0, 24001, 1000)))
    ds = load_vectors(folder)
    qids = np.arange(0, 24000, 12)  # 2,000 queries: each task takes a moment
    args = (Source.of(ds), plan_shards(ds), ds.rows(qids), qids, 10, "l2")
    want = sharded_ground_truth(InProcess(), *args)
    with DaskExecutor(2, processes=True) as ex:
        pids = ex.client.run(os.getpid)  # worker address -> its process
        killed: list[bool] = []

        def kill_one_busy() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                busy = [w for w, keys in ex.client.processing().items() if keys and w in pids]
                if busy:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(True)
                    return
                time.sleep(0.002)

        killer = threading.Thread(target=kill_one_busy)
        killer.start()
        got = sharded_ground_truth(ex, *args)
        killer.join()
    assert killed, "no worker was busy to kill"
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


def test_cli_shards_give_the_same_estimate(tmp_path):
    """--shard-rows (in this process) and --workers (a local Dask cluster): the same recall as
    one pass, and the JSON says where the ground truth ran."""
    pytest.importorskip("distributed")
    import json

    from gpupq.cli import app

    from .helpers import cli_runner

    folder = _shards(tmp_path / "s", clustered(4000, 16, seed=9))
    base = ["estimate", "--data", folder, "--m", "4", "--nlist", "16", "--nprobe", "4", "--json", "-q"]
    runs = {}
    for label, extra in (("one", []), ("rows", ["--shard-rows", "700"]), ("dask", ["--workers", "2"])):
        res = cli_runner().invoke(app, base + extra)
        assert res.exit_code == 0, res.stderr
        runs[label] = json.loads(res.stdout)
    assert "execution" not in runs["one"]["dataset"]
    stages = ["ground truth", "adding", "search"]
    rows = runs["rows"]["dataset"]["execution"]
    assert (rows["executor"], rows["shards"], rows["stages"]) == ("in-process", 9, stages)
    assert set(rows["shard_seconds"]) == set(stages) and "one after another" in rows["timing_note"]
    dask = runs["dask"]["dataset"]["execution"]
    assert (dask["executor"], dask["workers"]) == ("dask", 2) and dask["dashboard"].startswith("http")
    assert "round trips" in dask["timing_note"]
    assert "modelled" not in runs["one"]["results"][0]["timings"]
    for label in ("rows", "dask"):  # each sharded phase also modelled with a machine a shard
        t = runs[label]["results"][0]["timings"]
        for phase in ("ground_truth", "add", "search"):
            assert 0 < t["modelled"][f"{phase}_s"] <= t["runs"][phase]["median_s"], (label, phase)
        assert 0 < t["modelled"]["latency"]["p50_s"] <= t["latency"]["p99_s"]
    for label in ("rows", "dask"):
        assert runs[label]["results"][0]["recall"] == runs["one"]["results"][0]["recall"]
    bad = cli_runner().invoke(app, [*base, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert bad.exit_code == 2 and "not both" in bad.stderr


def test_a_failed_shard_is_one_line_naming_it(tmp_path, threads_cluster):
    """A file truncated after the collection was opened: the worker's task fails, and the error
    names the shard and the file, in one line."""
    x = clustered(4000, 16, seed=2)
    folder = _shards(tmp_path / "s", x)
    ds = load_vectors(folder)
    qids = np.array([1, 2])
    args = (Source.of(ds), plan_shards(ds), ds.rows(qids), qids, 10, "l2")
    np.save(tmp_path / "s" / "s02.npy", x[901:1000])  # fewer rows than the manifest says
    text = refused(sharded_ground_truth, threads_cluster, *args)
    assert text.startswith("shard 3 of 4 (rows 901-2,400): ") and "s02.npy: now holds (99, 16)" in text
    broken = tmp_path / "s" / "s02.npy"
    broken.write_bytes(broken.read_bytes()[:-64])  # and truncated
    text = refused(sharded_ground_truth, threads_cluster, *args)
    assert text.startswith("shard 3 of 4 (rows 901-2,400): ") and "truncated" in text


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_sharded_index_searches_as_one(tmp_path, threads_cluster, metric):
    """Lists encoded shard by shard (here and on Dask workers), searched with one coarse search
    and merged per probed list by (score, id): the one index's neighbours at every nprobe, and
    the two executors equal bit for bit."""
    import copy

    from gpupq.cluster import ShardedIndex
    from gpupq.ivf import IVFPQIndex

    x = clustered(5000, 16, seed=11)
    folder = _shards(tmp_path / "s", x, (0, 1200, 1201, 3000, 5000))
    ds = load_vectors(folder)
    qids = np.array([3, 1200, 2999, 4000])
    be = NumpyBackend()
    template = IVFPQIndex(be, 16, 32, 4, 8, metric)
    template.train(be.asarray(x[:4000]), be.asarray(x[:4000]), np.random.default_rng(0))
    one = copy.copy(template)
    one.warnings = []
    one.reset()
    for ids, xb in Split(ds, qids).iter_base():
        one.add(xb, ids)
    one.build()
    q = clustered(60, 16, seed=12)
    plan = plan_shards(ds, 1500)
    here = ShardedIndex.build(InProcess(2), ds, plan, template, qids)
    there = ShardedIndex.build(threads_cluster, Source.of(ds), plan, template, qids)
    np.testing.assert_array_equal(here.list_sizes, one.list_sizes)
    assert here.ntotal == one.ntotal == 5000 - 4
    sh_d, sh_i, sh_p = here.scan(q, 10, 16)
    th_d, th_i, th_p = there.scan(q, 10, 16)
    for a, b in ((sh_d, th_d), (sh_i, th_i), (sh_p, th_p)):
        np.testing.assert_array_equal(a, b)
    one_d, one_i, _ = one.scan(q, 10, 16)
    ps = [1, 2, 5, 16]
    for got, want in zip(
        here.merge_prefixes(sh_d, sh_i, ps, 10), one.merge_prefixes(one_d, one_i, ps, 10), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    d1, i1, stats = here.search(q, 10, 4)
    d0, i0, s0 = one.search(q, 10, 4)
    np.testing.assert_array_equal(i1, i0)
    np.testing.assert_allclose(d1, d0, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(stats.scanned, s0.scanned)
    there.release()


@pytest.mark.parametrize("command", ["sweep", "recommend"])
def test_sweep_and_recommend_in_shards_find_what_one_pass_finds(tmp_path, command):
    """--shard-rows: every build's lists encoded and searched in shards (in this process), the
    ground truth too: the same points and the same answers as one pass."""
    import json

    from gpupq.cli import app

    from .helpers import cli_runner

    folder = _shards(tmp_path / "s", clustered(4000, 16, seed=9))
    args = {
        "sweep": ["--m", "4,8", "--nlist", "16,32", "--rerank", "0,40", "--no-timing"],
        "recommend": ["--target-recall", "0.9", "--nlist", "16,32", "--m", "4,8", "--nbits", "4,8", "--min-time", "0"],
    }[command]
    base = [command, "--data", folder, *args, "--backend", "numpy", "--json", "-q"]
    one, shards = (cli_runner().invoke(app, base + extra) for extra in ([], ["--shard-rows", "900"]))
    assert one.exit_code == 0 and shards.exit_code == 0, shards.stderr
    a, b = json.loads(one.stdout), json.loads(shards.stdout)
    assert b["dataset"]["execution"]["stages"] == ["ground truth", "adding", "search"]
    if command == "sweep":
        assert [p["recall"] for p in b["points"]] == [p["recall"] for p in a["points"]]
        key = "vectors_scanned_per_query"
        assert [p[key] for p in b["points"]] == [p[key] for p in a["points"]]
    else:

        def answers(j):
            return [(x["candidate"], x["point"]["nprobe"], x["point"]["recall"]) for x in j["answers"]]

        assert answers(b) == answers(a) and answers(a)
        assert b["coverage"] == a["coverage"]
        # timed in shards: also as deployed with a machine a shard (here they ran one after another)
        assert all(x["point"]["modelled_queries_per_s"] >= x["point"]["queries_per_s"] for x in b["answers"])
        assert all("modelled_queries_per_s" not in x["point"] for x in a["answers"])


def test_lists_lost_with_a_worker_are_encoded_again(tmp_path):
    """A worker process holding a shard's lists is killed between the build and a search: the
    scheduler encodes that shard again from the files and the search is unchanged."""
    pytest.importorskip("distributed")
    from gpupq.cluster import DaskExecutor, ShardedIndex
    from gpupq.ivf import IVFPQIndex

    x = clustered(8000, 16, seed=11)
    folder = _shards(tmp_path / "s", x, (0, 2000, 4000, 6000, 8000))
    ds = load_vectors(folder)
    qids = np.array([3, 4000])
    be = NumpyBackend()
    template = IVFPQIndex(be, 16, 32, 4, 8, "l2")
    template.train(be.asarray(x[:4000]), be.asarray(x[:4000]), np.random.default_rng(0))
    q = clustered(60, 16, seed=12)
    want = ShardedIndex.build(InProcess(), ds, plan_shards(ds), template, qids).scan(q, 10, 8)
    with DaskExecutor(2, processes=True) as ex:
        index = ShardedIndex.build(ex, Source.of(ds), plan_shards(ds), template, qids)
        pids = ex.client.run(os.getpid)
        holder = next(iter(ex.client.who_has(index.handles).values()))[0]
        os.kill(pids[holder], signal.SIGKILL)
        time.sleep(1.0)  # the scheduler notices the loss (a scatter racing it is retried: not this test's point)
        got = index.scan(q, 10, 8)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def _slow_in_shard(item: tuple[int, int], delay: dict[int, float]) -> int:
    time.sleep(delay.get(item[0], 0.0))
    return item[0]


@pytest.mark.parametrize("where", ["here", "dask"])
def test_each_shards_seconds_are_timed_where_it_ran(where, request):
    """The clock keeps each shard's own seconds by stage (not the round trip to it), and adds
    to the overhead only what the call took beyond its slowest shard."""
    from gpupq.executors import ShardClock

    ex = InProcess() if where == "here" else request.getfixturevalue("threads_cluster")
    ex.clock = ShardClock()
    items = [(0, 1), (1, 2), (2, 3)]
    delay = {0: 0.01, 1: 0.06, 2: 0.02}
    t0 = time.perf_counter()
    assert ex.map(_slow_in_shard, items, delay, stage="ground truth") == [0, 1, 2]
    wall = time.perf_counter() - t0
    ex.map(_slow_in_shard, items, delay, stage="ground truth")
    got = ex.clock.stages["ground truth"]
    for i in range(3):  # two calls summed; the slack (a busy CI host) stays below what the round
        # trip to the slowest shard would add to the fastest (2 × 0.06 against 2 × 0.01 + 0.05)
        assert 2 * delay[i] <= got[i] < 2 * delay[i] + 0.05
    d = ex.clock.describe()["ground truth"]
    assert (d["calls"], d["slowest_shard"]) == (2, 2)
    assert d["slowest_shard_s"] == pytest.approx(got[1])
    assert 0.0 <= ex.clock.overhead_s < 2 * wall
    if where == "here":  # one after another: the first and last shard were beyond the slowest
        assert ex.clock.overhead_s >= 2 * (0.01 + 0.02)
    ex.map(_slow_in_shard, items, delay)  # no stage: not recorded
    assert ex.clock.calls == {"ground truth": 2}


def test_shard_clock_overhead_is_the_wall_beyond_the_slowest_shard():
    from gpupq.executors import ShardClock

    c = ShardClock()
    c.record("search", 1.0, [0.2, 0.7, 0.1])
    c.record("search", 0.5, [0.2, 0.1, 0.3])
    c.record("adding", 0.1, [0.4, 0.2, 0.3])  # a call whose shards' clocks ran past its wall: no credit
    np.testing.assert_allclose(c.stages["search"], [0.4, 0.8, 0.4])
    assert c.overhead() == pytest.approx(0.3 + 0.2)
    assert c.describe()["adding"]["slowest_shard"] == 1


@pytest.mark.parametrize("where", ["here", "dask"])
def test_adding_in_shards_reports_each_shard_as_it_is_done(tmp_path, where, request):
    from gpupq.cluster import ShardedIndex
    from gpupq.ivf import IVFPQIndex

    x = clustered(3000, 16, seed=6)
    np.save(tmp_path / "x.npy", x)
    ds = load_vectors(tmp_path / "x.npy")
    template = IVFPQIndex(NumpyBackend(), 16, 16, 4, 8, "l2")
    template.train(x, x, np.random.default_rng(0))
    ex = InProcess() if where == "here" else request.getfixturevalue("threads_cluster")
    seen: list[int] = []
    data = ds if where == "here" else Source.of(ds)
    index = ShardedIndex.build(ex, data, plan_shards(ds, 700), template, np.array([5]), progress=seen.append)
    assert sorted(seen) == [200, 700, 700, 700, 700] and index.ntotal == 2999  # rows of each shard
    index.release()


def test_a_shard_of_held_out_rows_only_holds_empty_lists(tmp_path):
    """Every row of a shard held out as a query: its task encodes nothing, and searches give
    the other shards' neighbours."""
    from gpupq.cluster import ShardedIndex
    from gpupq.ivf import IVFPQIndex

    x = clustered(2000, 16, seed=7)
    np.save(tmp_path / "x.npy", x)
    ds = load_vectors(tmp_path / "x.npy")
    template = IVFPQIndex(NumpyBackend(), 16, 8, 4, 8, "l2")
    template.train(x, x, np.random.default_rng(0))
    qids = np.arange(500, 1000)  # the second shard, whole
    index = ShardedIndex.build(InProcess(), ds, plan_shards(ds, 500), template, qids)
    assert index.ntotal == 1500 and index.handles[1].ntotal == 0
    _, found, _ = index.search(x[qids[:5]], 10, 8)
    assert ((found < 500) | (found >= 1000)).all()
