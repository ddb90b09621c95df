"""--cache DIR: the ground truth kept by what it depends on, read back instead of computed, and
never read when the data, the queries or the metric changed."""

from __future__ import annotations

import os

import numpy as np
import pytest

import gpupq.engine as engine_mod
from gpupq.cache import StageCache, check_cache_dir
from gpupq.estimate import EstimateConfig, estimate
from gpupq.io import load_vectors, make_synthetic

from .helpers import clustered, refused

CFG = EstimateConfig(m=4, nlist=16, nprobe=4, rerank=0, queries=40, min_time=0)


def _run(data, cache, **kw):
    return estimate(data, CFG, "numpy", cache=str(cache), **kw)


def _entries(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".npy")


@pytest.fixture
def npy(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, clustered(3000, 16, seed=2))
    return path


def _no_compute(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the ground truth was computed, not read from the cache")

    monkeypatch.setattr(engine_mod, "exact_knn", refuse)


def test_second_run_reads_the_ground_truth(tmp_path, npy, monkeypatch):
    cache = tmp_path / "cache"
    first = _run(load_vectors(npy), cache)
    assert first.dataset["ground_truth"] == "computed (exact search)"
    assert len(_entries(cache)) == 1 and not [p for p in cache.iterdir() if p.name.startswith(".")]
    _no_compute(monkeypatch)
    second = _run(load_vectors(npy), cache)
    assert second.dataset["ground_truth"].startswith("cached: ")
    assert second.results[0].recall == first.results[0].recall


def test_changed_file_queries_or_metric_is_a_new_entry(tmp_path, npy):
    cache = tmp_path / "cache"
    _run(load_vectors(npy), cache)
    _run(load_vectors(npy, metric="cosine"), cache)  # another metric
    assert len(_entries(cache)) == 2
    estimate(load_vectors(npy), EstimateConfig(**{**CFG.__dict__, "seed": 1}), "numpy", cache=str(cache))
    assert len(_entries(cache)) == 3  # other held-out queries
    x = np.load(npy)
    x[5] += 1.0  # rewritten in place: same name, other values (and size or time)
    np.save(npy, x)
    os.utime(npy, ns=(1, 1))
    result = _run(load_vectors(npy), cache)
    assert result.dataset["ground_truth"] == "computed (exact search)"
    assert len(_entries(cache)) == 4


def test_damaged_entry_is_computed_again(tmp_path, npy):
    cache = tmp_path / "cache"
    _run(load_vectors(npy), cache)
    (entry,) = _entries(cache)
    np.save(cache / entry, np.full((40, 11), 10**9, dtype=np.int64))  # ids past the data
    again = _run(load_vectors(npy), cache)
    assert again.dataset["ground_truth"] == "computed (exact search)"
    (cache / entry).write_bytes(b"not an array")
    assert _run(load_vectors(npy), cache).dataset["ground_truth"] == "computed (exact search)"
    assert np.load(cache / entry).max() < 3000  # written again, whole


def test_an_entry_serves_smaller_k_and_is_widened_for_larger(tmp_path, npy):
    cache = tmp_path / "cache"
    _run(load_vectors(npy), cache)  # k=10: 11 neighbours kept
    (entry,) = _entries(cache)
    assert np.load(cache / entry).shape == (40, 11)
    small = estimate(load_vectors(npy), EstimateConfig(**{**CFG.__dict__, "k": 5}), "numpy", cache=str(cache))
    assert small.dataset["ground_truth"].startswith("cached: ")
    estimate(load_vectors(npy), EstimateConfig(**{**CFG.__dict__, "k": 20}), "numpy", cache=str(cache))
    assert np.load(cache / entry).shape == (40, 21)


def test_interrupted_write_leaves_no_entry(tmp_path, monkeypatch):
    folder = check_cache_dir(tmp_path / "c", [])

    def broken(f, array, allow_pickle=False):
        f.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", broken)
    refused(StageCache(folder).save, "ground-truth", "k1", np.zeros((2, 2), np.int64), {}, match="No space left")
    assert list(folder.iterdir()) == []


def test_synthetic_data_is_not_cached(tmp_path):
    cache = tmp_path / "cache"
    result = _run(make_synthetic(3000, 16, 0, "l2"), cache)
    assert result.dataset["ground_truth"] == "computed (exact search)" and _entries(cache) == []


def test_cache_folder_refusals(tmp_path, npy):
    refused(check_cache_dir, npy, [npy], match="is a file")
    refused(check_cache_dir, tmp_path / "no" / "such", [], match="does not exist")
    shards = tmp_path / "shards"
    shards.mkdir()
    np.save(shards / "a.npy", clustered(100, 4))
    refused(check_cache_dir, shards, [str(shards)], match="is an input")
    refused(check_cache_dir, shards, [str(shards / "*.npy")], match="holds input files")
    assert check_cache_dir(tmp_path / "new", [str(shards)]).is_dir()  # created


# ---------------------------------------------------------------------------------- builds
def _sweep(args: list[str]) -> dict:
    import json

    from gpupq.cli import app

    from .helpers import cli_runner

    res = cli_runner().invoke(app, ["sweep", *args, "--json", "-q"])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def _same_points(a: dict, b: dict) -> None:
    for key in ("recall", "recall_raw", "vectors_scanned_per_query", "memory_bytes"):
        assert [p[key] for p in a["points"]] == [p[key] for p in b["points"]], key


def test_a_repeated_sweep_reads_its_builds_and_finds_the_same(tmp_path, monkeypatch):
    """One pass: each build (trained quantizers and lists) is kept whole and read back instead
    of trained and filled; the points are the same, bit for bit; a damaged entry is built again."""
    x = clustered(3000, 16, seed=8)
    np.save(tmp_path / "x.npy", x)
    args = ["--npy", str(tmp_path / "x.npy"), "--nlist", "16,32", "--m", "4,8", "--opq", "off,on", "--nprobe", "2,8"]
    args += ["--rerank", "0,20", "--cache", str(tmp_path / "c"), "--no-timing"]
    first = _sweep(args)
    assert all("cached" not in b for b in first["builds"])
    entries = sorted((tmp_path / "c").glob("build-*.npz"))
    assert len(entries) == 8
    trained = []
    monkeypatch.setattr(engine_mod.Workbench, "_train_pq", lambda *a, **k: trained.append(a) or 1 / 0)
    second = _sweep(args)  # training would fail: nothing is trained
    assert not trained and all(b["cached"].startswith("build cached: ") for b in second["builds"])
    _same_points(first, second)
    monkeypatch.undo()
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # damaged: built again, the same
    third = _sweep(args)
    assert sum("cached" not in b for b in third["builds"]) == 1
    _same_points(first, third)
    other = _sweep([*args, "--seed", "1"])  # another seed: other quantizers, other entries
    assert all("cached" not in b for b in other["builds"]) and len(list((tmp_path / "c").glob("build-*.npz"))) == 16


@pytest.mark.parametrize(("training", "workers"), [("global", []), ("per-shard", []), ("global", ["--workers", "2"])])
def test_an_interrupted_sharded_sweep_resumes_from_the_shards_kept(tmp_path, training, workers):
    """In shards, each task keeps its shard's lists (and, per shard, its own quantizers) and
    the quantizers trained here are kept too; a shard whose entry is missing (a run stopped
    part-way) is encoded again and the rest read back: the same points."""
    if workers:
        pytest.importorskip("distributed")
    folder = tmp_path / "s"
    folder.mkdir()
    x = clustered(4000, 16, seed=9)
    for i, (a, b) in enumerate(((0, 1000), (1000, 2500), (2500, 4000))):
        np.save(folder / f"p{i}.npy", x[a:b])
    args = ["--data", str(folder), "--nlist", "16", "--m", "4,8", "--nprobe", "2,8", "--no-timing"]
    args += ["--cache", str(tmp_path / "c"), "--shard-training", training, "--shard-rows", "1500", *workers]
    first = _sweep(args)
    lists = sorted((tmp_path / "c").glob("lists-*.npz"))
    assert len(lists) == 2 * 3 and all("cached" not in b for b in first["builds"])
    assert len(list((tmp_path / "c").glob("quantizers-*.npz"))) == (2 if training == "global" else 0)
    lists[0].unlink()  # one shard of one build was never kept
    second = _sweep(args)
    said = sorted(b["cached"] for b in second["builds"])
    quantizers = "quantizers cached; " if training == "global" else ""
    assert said == sorted([f"{quantizers}2 of 3 shards' lists cached", f"{quantizers}3 of 3 shards' lists cached"])
    _same_points(first, second)
    one = _sweep([a for a in args if a not in ("--cache", str(tmp_path / "c"))])  # the same without a cache
    _same_points(first, one)
