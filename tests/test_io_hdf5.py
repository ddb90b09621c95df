"""ann-benchmarks HDF5 files: their test queries, stored ground truth and declared distance,
and named datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpupq.cli import app
from gpupq.errors import GpupqError
from gpupq.io import load_vectors

from .helpers import cli_runner, clustered
from .io_writers import FAST_ARGS, X, write_ann


@pytest.mark.parametrize("distance,metric", [("euclidean", "l2"), ("angular", "cosine")])
def test_ann_benchmarks_queries_and_ground_truth(tmp_path, distance, metric):
    path = tmp_path / "toy-16-euclidean.hdf5"
    write_ann(path, clustered(3000, 16, seed=5, centres=60), clustered(50, 16, seed=6, centres=60), distance)
    res = cli_runner().invoke(app, ["estimate", "--data", str(path), *FAST_ARGS])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    ds = out["dataset"]
    assert ds["metric"] == metric and (ds["n_base"], ds["n_queries"]) == (3000, 50)
    assert ds["queries_source"] == f"{path}:test" and ds["ground_truth"] == f"{path}:neighbors"
    assert out["results"][0]["timings"]["ground_truth_s"] is None
    assert "stored neighbors" in res.stderr
    # the same estimate with the ground truth computed here gives the same recall
    import gpupq
    from gpupq.io import open_inputs

    inputs = open_inputs(path)
    cfg = gpupq.EstimateConfig(m=4, nlist=16, nbits=6, queries=50, metric=metric)
    stored = gpupq.estimate(inputs.dataset, cfg, "numpy", queries=inputs.queries, ground_truth=inputs.ground_truth)
    computed = gpupq.estimate(inputs.dataset, cfg, "numpy", queries=inputs.queries)
    assert stored.results[0].recall.mean == pytest.approx(computed.results[0].recall.mean, abs=0.01)


def test_ann_benchmarks_k_must_fit(tmp_path):
    path = tmp_path / "a.hdf5"
    write_ann(path, clustered(2000, 16), clustered(20, 16, seed=2), "euclidean", k=10)
    res = cli_runner().invoke(app, ["estimate", "--data", str(path), "-k", "20", "--rerank", "0", "-q"])
    assert res.exit_code == 2
    assert "-k 20 is more than the 10 neighbours stored per query" in res.stderr


def test_ann_benchmarks_other_metric_computes_ground_truth(tmp_path):
    path = tmp_path / "a.hdf5"
    write_ann(path, clustered(2000, 16), clustered(20, 16, seed=2), "euclidean")
    res = cli_runner().invoke(app, ["estimate", "--data", str(path), "--metric", "ip", *FAST_ARGS])
    assert res.exit_code == 0, res.stderr
    ds = json.loads(res.stdout)["dataset"]
    assert ds["metric"] == "ip" and ds["ground_truth"] == "computed (exact search)"
    assert "computed, as its neighbors are for euclidean" in res.stderr


def test_hdf5_named_dataset_and_errors(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("emb", data=X.astype(np.float32))
    with pytest.raises(GpupqError, match="has no dataset 'train'; it holds emb"):
        load_vectors(path)
    np.testing.assert_array_equal(load_vectors(path, name="emb").rows(np.array([4, 1])), X[[4, 1]].astype(np.float32))
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"nope" * 10)
    with pytest.raises(GpupqError, match="not a readable HDF5 file"):
        load_vectors(bad)
