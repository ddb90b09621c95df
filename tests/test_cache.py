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
