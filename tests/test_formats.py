"""Readers: round trips through small files written here, and broken files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpupq.cli import app
from gpupq.errors import GpupqError
from gpupq.formats import FORMATS, detect_format, load_vectors

from .conftest import cli_runner, clustered


def write_vecs(path, x: np.ndarray, dtype: str) -> None:
    """TEXMEX: per row, int32 d then d values."""
    n, d = x.shape
    values = x.astype(dtype)
    rows = np.empty((n, 4 + d * values.itemsize), dtype=np.uint8)
    rows[:, :4] = np.full((n, 1), d, dtype="<i4").view(np.uint8)
    rows[:, 4:] = values.view(np.uint8).reshape(n, -1)
    rows.tofile(path)


def write_bin(path, x: np.ndarray, dtype: str) -> None:
    """big-ann-benchmarks: uint32 n, uint32 d, then the values."""
    with open(path, "wb") as fh:
        fh.write(np.array(x.shape, dtype="<u4").tobytes())
        fh.write(x.astype(dtype).tobytes())


def write_h5(path, x: np.ndarray) -> None:
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=x.astype(np.float32))


def write_arrow(path, x: np.ndarray, fmt: str, fixed: bool = True) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.ipc
    import pyarrow.parquet

    values = pa.array(x.astype(np.float32).ravel())
    if fixed:
        emb = pa.FixedSizeListArray.from_arrays(values, x.shape[1])
    else:
        emb = pa.ListArray.from_arrays(pa.array(np.arange(0, x.size + 1, x.shape[1], dtype=np.int32)), values)
    table = pa.table({"id": pa.array(np.arange(len(x))), "emb": emb})
    if fmt == "parquet":
        pyarrow.parquet.write_table(table, path, row_group_size=128)  # several batches
    else:
        with pyarrow.ipc.new_file(path, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=128):
                writer.write_batch(batch)


X = (clustered(500, 12, seed=1) * 8).clip(-120, 120)
CASES = {
    "fvecs": (lambda p: write_vecs(p, X, "<f4"), X.astype(np.float32)),
    "ivecs": (lambda p: write_vecs(p, X, "<i4"), X.astype(np.int32).astype(np.float32)),
    "bvecs": (lambda p: write_vecs(p, np.abs(X), "u1"), np.abs(X).astype(np.uint8).astype(np.float32)),
    "fbin": (lambda p: write_bin(p, X, "<f4"), X.astype(np.float32)),
    "u8bin": (lambda p: write_bin(p, np.abs(X), "u1"), np.abs(X).astype(np.uint8).astype(np.float32)),
    "i8bin": (lambda p: write_bin(p, X, "i1"), X.astype(np.int8).astype(np.float32)),
    "ibin": (lambda p: write_bin(p, X, "<i4"), X.astype(np.int32).astype(np.float32)),
    "npy": (lambda p: np.save(p, X), X.astype(np.float32)),
    "npz": (lambda p: np.savez(p, emb=X), X.astype(np.float32)),
    "hdf5": (lambda p: write_h5(p, X), X.astype(np.float32)),
    "parquet": (lambda p: write_arrow(p, X, "parquet"), X.astype(np.float32)),
    "arrow": (lambda p: write_arrow(p, X, "arrow", fixed=False), X.astype(np.float32)),
}


@pytest.mark.parametrize("fmt", list(CASES))
def test_round_trip(tmp_path, fmt):
    write, expect = CASES[fmt]
    path = tmp_path / f"x.{fmt}"
    write(path)
    ds = load_vectors(path)
    assert (ds.n, ds.d) == (500, 12)
    np.testing.assert_array_equal(ds.chunk(0, 500), expect)
    ids = np.array([499, 3, 250, 0])
    np.testing.assert_array_equal(ds.rows(ids), expect[ids])
    if hasattr(ds.array, "flags"):
        assert not ds.array.flags.writeable  # read-only map


def test_every_format_has_a_round_trip():
    assert set(FORMATS) == set(CASES)


def test_format_override(tmp_path):
    path = tmp_path / "sift_base.dat"
    write_vecs(path, X, "<f4")
    with pytest.raises(GpupqError, match="--format"):
        load_vectors(path)
    np.testing.assert_array_equal(load_vectors(path, "fvecs").chunk(0, 5), X[:5].astype(np.float32))
    with pytest.raises(GpupqError, match="--format 'hdf9' is not one of"):
        detect_format(str(path), "hdf9")


def test_npz_compressed_and_named(tmp_path):
    path = tmp_path / "two.npz"
    np.savez_compressed(path, base=X, extra=X[:10])
    with pytest.raises(GpupqError, match="holds arrays base, extra; pick one with --name"):
        load_vectors(path)
    with pytest.raises(GpupqError, match="has no array 'nope'"):
        load_vectors(path, name="nope")
    ds = load_vectors(path, name="base")
    assert ds.source.endswith("two.npz:base")
    np.testing.assert_array_equal(ds.chunk(0, 500), X.astype(np.float32))
    np.testing.assert_array_equal(load_vectors(path, name="extra").chunk(0, 10), X[:10].astype(np.float32))


def test_npz_pickled_member_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, emb=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(GpupqError, match="pickled"):
        load_vectors(path)


def test_name_only_for_npz(tmp_path):
    path = tmp_path / "x.fvecs"
    write_vecs(path, X, "<f4")
    with pytest.raises(GpupqError, match=r"--name picks an array inside an \.npz"):
        load_vectors(path, name="emb")


@pytest.mark.parametrize("fmt", ["fvecs", "bvecs", "ivecs"])
def test_vecs_truncated(tmp_path, fmt):
    path = tmp_path / f"x.{fmt}"
    CASES[fmt][0](path)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(GpupqError, match="not a whole number of rows"):
        load_vectors(path)


def test_vecs_mixed_dimensions(tmp_path):
    path = tmp_path / "x.fvecs"
    write_vecs(path, X, "<f4")
    raw = bytearray(path.read_bytes())
    row = 4 + 12 * 4
    raw[7 * row : 7 * row + 4] = np.array([11], dtype="<i4").tobytes()  # row 7 claims d=11
    path.write_bytes(bytes(raw))
    with pytest.raises(GpupqError, match="row 7 declares dimension 11, row 0 declares 12"):
        load_vectors(path)


@pytest.mark.parametrize("cut,message", [(-5, "truncated"), (7, "bytes past the")])
def test_bin_size_must_match_header(tmp_path, cut, message):
    path = tmp_path / "x.fbin"
    write_bin(path, X, "<f4")
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut < 0 else data + b"\0" * cut)
    with pytest.raises(GpupqError, match=message):
        load_vectors(path)


def test_not_a_zip(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(GpupqError, match=r"not an \.npz file"):
        load_vectors(path)


def test_cli_data_flag(tmp_path):
    path = tmp_path / "base.bvecs"
    write_vecs(path, np.abs(clustered(3000, 16, seed=2) * 6).clip(0, 255), "u1")
    res = cli_runner().invoke(
        app, ["estimate", "--data", str(path), "--m", "4", "--nlist", "16", "--nbits", "6", "--json", "-q"]
    )
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["dataset"]["dtype"] == "uint8" and out["dataset"]["d"] == 16
    assert 0 < out["results"][0]["recall"]["mean"] <= 1


def test_cli_format_error_is_one_line(tmp_path):
    path = tmp_path / "x.vec"
    path.write_bytes(b"\0" * 64)
    res = cli_runner().invoke(app, ["estimate", "--data", str(path), "-q"])
    assert res.exit_code == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "--format" in res.stderr


FAST_ARGS = ["--m", "4", "--nlist", "16", "--nbits", "6", "--json", "-q"]


def test_queries_file_nothing_held_out(tmp_path):
    import gpupq

    base, queries = tmp_path / "base.fbin", tmp_path / "q.fvecs"
    x = clustered(4000, 16, seed=3, centres=50)
    write_bin(base, x, "<f4")
    write_vecs(queries, clustered(60, 16, seed=4, centres=50), "<f4")
    res = cli_runner().invoke(
        app,
        ["estimate", "--data", str(base), "--queries-file", str(queries), *FAST_ARGS],
    )
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)["dataset"]
    assert (out["n_base"], out["n_queries"], out["queries_source"]) == (4000, 60, str(queries))
    # the first N rows with --queries N; the library takes the same path
    cfg = gpupq.EstimateConfig(m=4, nlist=16, nbits=6, queries=25)
    r = gpupq.estimate(load_vectors(base), cfg, "numpy", queries=load_vectors(queries))
    assert (r.n_base, r.n_queries) == (4000, 25)
    # exact neighbours come from the whole base: re-ranking everything probed finds them
    cfg = gpupq.EstimateConfig(m=4, nlist=16, nprobe=16, nbits=6, queries=25, rerank=4000)
    assert (
        gpupq.estimate(load_vectors(base), cfg, "numpy", queries=load_vectors(queries)).results[0].recall_rerank.mean
        == 1.0
    )


@pytest.mark.parametrize(
    "queries,args,message",
    [
        (clustered(10, 8), [], "queries have d=8 but the data has d=16"),
        (clustered(10, 16), ["--queries", "11"], "--queries 11: the query file"),
    ],
)
def test_queries_file_mismatch(tmp_path, queries, args, message):
    base, qpath = tmp_path / "base.npy", tmp_path / "q.npy"
    np.save(base, clustered(2000, 16))
    np.save(qpath, queries)
    res = cli_runner().invoke(app, ["estimate", "--data", str(base), "--queries-file", str(qpath), *args, "-q"])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def write_ann(path, base: np.ndarray, test: np.ndarray, distance: str, k: int = 20) -> np.ndarray:
    """An ann-benchmarks file; returns its neighbors (exact, for the declared distance)."""
    h5py = pytest.importorskip("h5py")
    if distance == "angular":
        b = base / np.linalg.norm(base, axis=1, keepdims=True)
        t = test / np.linalg.norm(test, axis=1, keepdims=True)
        order = np.argsort(-(t @ b.T), axis=1)[:, :k]
    else:
        order = np.argsort(((test[:, None] - base[None]) ** 2).sum(-1), axis=1)[:, :k]
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = distance
        f.create_dataset("train", data=base.astype(np.float32))
        f.create_dataset("test", data=test.astype(np.float32))
        f.create_dataset("neighbors", data=order.astype(np.int32))
        f.create_dataset("distances", data=np.zeros(order.shape, np.float32))
    return order


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
    from gpupq.formats import open_inputs

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


def test_arrow_columns(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet

    path = tmp_path / "two.parquet"
    emb = pa.FixedSizeListArray.from_arrays(pa.array(X.astype(np.float32).ravel()), 12)
    pyarrow.parquet.write_table(pa.table({"a": emb, "b": emb, "title": pa.array(["x"] * 500)}), path)
    with pytest.raises(GpupqError, match=r"name the embedding column with --column \(list columns: a, b\)"):
        load_vectors(path)
    assert load_vectors(path, column="b").source.endswith(":b")
    with pytest.raises(GpupqError, match="column 'title' is string, not a list of numbers"):
        load_vectors(path, column="title")
    with pytest.raises(GpupqError, match="no column 'zz'"):
        load_vectors(path, column="zz")
    ragged = tmp_path / "ragged.parquet"
    lists = pa.array([[1.0, 2.0], [3.0, 4.0], [5.0]], type=pa.list_(pa.float32()))
    pyarrow.parquet.write_table(pa.table({"e": lists}), ragged)
    ds = load_vectors(ragged)  # the shape comes from the metadata; rows are checked as they are read
    assert (ds.n, ds.d) == (3, 2)
    with pytest.raises(GpupqError, match="row 2 of 'e' has 1 values, row 0 has 2"):
        ds.validate()


def test_missing_optional_library_names_the_extra(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name in ("h5py", "pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    (tmp_path / "x.hdf5").write_bytes(b"\0")
    (tmp_path / "x.parquet").write_bytes(b"\0")
    with pytest.raises(GpupqError, match=r"pip install 'gpupq\[hdf5\]'"):
        load_vectors(tmp_path / "x.hdf5")
    with pytest.raises(GpupqError, match=r"pip install 'gpupq\[parquet\]'"):
        load_vectors(tmp_path / "x.parquet")


@pytest.mark.parametrize("fmt", ["fvecs", "fbin", "npz"])
def test_cli_broken_file_is_one_line_exit_2(tmp_path, fmt):
    path = tmp_path / f"x.{fmt}"
    CASES[fmt][0](path)
    path.write_bytes(path.read_bytes()[:-7])
    res = cli_runner().invoke(app, ["estimate", "--data", str(path), "-q"])
    assert res.exit_code == 2, res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.stderr
