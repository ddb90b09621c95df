"""The memory planner for lists held in shards: the bill of a shard against the arrays a built
shard holds (byte for byte) and numpy's own peak (tracemalloc), the placement, and the refusal."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

from gpupq.backends import NumpyBackend
from gpupq.cluster import InProcess, ShardedIndex, _lists_task, plan_shards
from gpupq.io import load_vectors
from gpupq.ivf import IVFPQIndex
from gpupq.placement import ShardMemory, Worker, place, quantizer_bytes, shard_memory

from .helpers import clustered, refused

MiB = 1 << 20


def _trained(x: np.ndarray, nlist: int, m: int, metric: str, opq: bool = False) -> IVFPQIndex:
    index = IVFPQIndex(NumpyBackend(), x.shape[1], nlist, m, 8, metric, opq)
    sample = x[:4000]
    return index.train(sample, sample, np.random.default_rng(0), sample if opq else None)


@pytest.mark.parametrize(("n", "d", "m", "metric"), [(150_000, 32, 8, "l2"), (90_000, 64, 32, "ip")])
def test_a_shards_bill_is_its_arrays_and_its_peak_bounds_numpys(tmp_path, n, d, m, metric):
    """Resident: exactly the bytes of the arrays a built shard keeps. Peak: at least what numpy
    allocated at once while encoding it (tracemalloc sees numpy's buffers), and not far above."""
    x = clustered(n, d, seed=3)
    np.save(tmp_path / "x.npy", x)
    ds = load_vectors(tmp_path / "x.npy")
    template = _trained(x, 64, m, metric)
    qids = np.array([3, 70], dtype=np.int64)
    tracemalloc.start()
    try:
        shard = _lists_task((0, n), ds, template, qids)
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kept = [shard.codes, shard.ids, shard.offsets, shard.list_sizes]
    kept += [shard._base_cache] if metric == "l2" else []
    assert (shard._base_cache is None) == (metric == "ip")
    bill = shard_memory(n - 2, template)
    assert bill.resident == sum(a.nbytes for a in kept)
    assert traced_peak <= bill.peak <= 1.3 * traced_peak + 16 * MiB, (traced_peak, bill.peak)
    assert quantizer_bytes(template) == template.coarse.nbytes + template.pq.codebooks.nbytes


def test_shards_go_largest_first_where_there_is_most_room():
    shards = [ShardMemory(r, r * 100, r * 100 + 1000) for r in (10, 40, 30, 20)]
    plan = place(shards, [Worker("a", 10_000), Worker("b", 10_000, held=500)], quantizers=100, what="IVF8,PQ4x8")
    assert plan.where == ["a", "a", "b", "b"]  # 40 -> a, 30 -> b (a has less room), 20 -> b, 10 -> a
    a, b = plan.workers
    assert (a.resident, b.resident) == (5000, 5000) and (a.held, b.held) == (100, 600)
    assert a.peak == 100 + 5000 + 1000  # one task at a time: one transient


def test_a_worker_running_tasks_at_once_holds_as_many_transients():
    shards = [ShardMemory(1, 100, 1100), ShardMemory(1, 100, 600), ShardMemory(1, 100, 300)]
    one, two = (place(shards, [Worker("w", 10_000, slots=s)], 0, "x").workers[0] for s in (1, 2))
    assert (one.peak, two.peak) == (300 + 1000, 300 + 1000 + 500)


def test_what_does_not_fit_is_refused_with_the_numbers():
    MB = 10**6
    shards = [ShardMemory(1_000_000, 400 * MB, 900 * MB)] * 4
    two = [Worker("a", 1000 * MB), Worker("b", 1000 * MB)]
    text = refused(place, shards, two, 0, "IVF1024,PQ64x8")
    assert text.startswith("the lists of IVF1024,PQ64x8 do not fit: 4 shards hold 1.6 GB (the largest 1,000,000")
    assert "2 workers may use 2 GB, at most 1 GB on one" in text and "more workers, or workers with more" in text
    # the total would fit, but one shard's encoding fits no worker: smaller shards
    text = refused(place, [ShardMemory(2_000_000, 300 * MB, 1500 * MB)], two, 0, "IVF1024,PQ64x8")
    assert "1.5 GB while encoding" in text and "a smaller --shard-rows" in text
    fits = place(shards[:2], two, 0, "IVF1024,PQ64x8")
    assert sorted(fits.where) == ["a", "b"]


def test_a_build_that_does_not_fit_is_refused_before_any_shard_is_encoded(tmp_path):
    x = clustered(3000, 16, seed=1)
    np.save(tmp_path / "x.npy", x)
    ds = load_vectors(tmp_path / "x.npy")
    ex = InProcess()
    ex.workers = lambda backend="numpy": [Worker("here", 1 * MiB)]  # a machine with 1 MiB free
    ran = []
    ex.place = lambda *a, **k: ran.append(a)  # type: ignore[method-assign]
    text = refused(ShardedIndex.build, ex, ds, plan_shards(ds, 1000), _trained(x, 16, 4, "l2"), np.array([0]))
    assert text.startswith("the lists of IVF16,PQ4x8 do not fit: 3 shards hold") and not ran


def test_dask_shards_live_where_the_planner_put_them(tmp_path):
    """On a real cluster each shard's lists are encoded on the worker the planner chose, the
    workers' limits and held bytes are read from them, and spilling is off (lists stay in memory)."""
    pytest.importorskip("distributed")
    from gpupq.cluster import DaskExecutor, Source

    x = clustered(6000, 16, seed=4)
    np.save(tmp_path / "x.npy", x)
    ds = load_vectors(tmp_path / "x.npy")
    with DaskExecutor(2, processes=False) as ex:
        workers = ex.workers()
        assert len(workers) == 2 and all(w.limit > 0 and w.held > 0 and w.slots == 1 for w in workers)
        index = ShardedIndex.build(ex, Source.of(ds), plan_shards(ds, 1000), _trained(x, 16, 4, "l2"), np.array([0]))
        who = ex.client.who_has(index.handles)
        assert [next(iter(who[h.key])) for h in index.handles] == index.placement.where
        assert len(set(index.placement.where)) == 2  # six equal shards: three each
        held = ex.workers()
        assert sum(h.held - w.held for h, w in zip(held, workers, strict=True)) == sum(
            s.resident for s in index.needs
        ) + 2 * quantizer_bytes(index.template)
        index.release()
        assert [w.held for w in ex.workers()] == [w.held for w in workers]
        spill = ex.client.run(lambda dask_worker: dask_worker.memory_manager.memory_spill_fraction)
        assert set(spill.values()) == {False}


# module-level (Dask pickles a task's function; these by reference, so their count is shared)
_READINGS = itertools.count()


def _one_growing_process() -> tuple[str, int, int]:
    return "one process", (100 + next(_READINGS)) * MiB, 8 << 30


def _a_process_each() -> tuple[str, int, int]:
    return f"process {next(_READINGS)}", 100 * MiB, 8 << 30


def test_workers_in_one_process_share_its_memory_not_each_count_it(monkeypatch):
    """Two workers in one process (processes=False) hold equal parts of one reading of its RSS:
    read one after the other, the process grew a little between readings, and each counting the
    whole of its own would put every shard on whichever was read first (a failure CI saw).
    Workers in processes of their own each hold the whole of their own reading."""
    pytest.importorskip("distributed")
    from gpupq import executors
    from gpupq.cluster import DaskExecutor

    monkeypatch.setattr(executors, "_worker_memory", _one_growing_process)
    with DaskExecutor(2, processes=False) as ex:
        workers = ex.workers()
        assert [w.held for w in workers] == [workers[0].held] * 2 and 50 * MiB <= workers[0].held <= 51 * MiB
        shards = [ShardMemory(1000, 16_000, 64_000) for _ in range(6)]
        assert sorted(place(shards, workers, 0, "IVF16,PQ4x8").where) == sorted([w.name for w in workers] * 3)
    monkeypatch.setattr(executors, "_worker_memory", _a_process_each)
    with DaskExecutor(2, processes=False) as ex:
        assert [w.held for w in ex.workers()] == [100 * MiB] * 2


def test_memory_mapped_inputs_count_the_pages_their_shards_read(tmp_path):
    """A shard read through np.memmap keeps its rows' pages mapped (RSS shows them): counted
    apart from what is refused on; inputs read otherwise, and arrays in memory, map nothing."""
    from gpupq.cluster import Source, _mapped_row_bytes
    from gpupq.io import Dataset

    x = clustered(2000, 24, seed=2)
    np.save(tmp_path / "one.npy", x)
    assert _mapped_row_bytes(load_vectors(tmp_path / "one.npy")) == 24 * 4
    assert _mapped_row_bytes(Source.of(load_vectors(tmp_path / "one.npy"))) == 24 * 4
    assert _mapped_row_bytes(Dataset(array=x, source="memory")) == 0
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"emb": list(x)}), tmp_path / "x.parquet")
    assert _mapped_row_bytes(load_vectors(tmp_path / "x.parquet")) == 0
    bill = shard_memory(500, _trained(x, 8, 4, "l2"), 96)
    plan = place([bill, bill], [Worker("w", 1 << 30)], 0, "x")
    assert bill.mapped == 500 * 96 and plan.workers[0].peak_rss == plan.workers[0].peak + 1000 * 96
