"""Reading any format by extension or --format (round trips through small files written here),
what the CLI makes of a file, and query files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpupq.cli import app
from gpupq.errors import GpupqError
from gpupq.io import FORMATS, detect_format, load_vectors

from .helpers import cli_runner, clustered
from .io_writers import CASES, FAST_ARGS, X, write_bin, write_vecs


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


def test_name_only_for_npz(tmp_path):
    path = tmp_path / "x.fvecs"
    write_vecs(path, X, "<f4")
    with pytest.raises(GpupqError, match=r"--name picks an array inside an \.npz"):
        load_vectors(path, name="emb")


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
