"""Collections of files (a directory or a glob) read as one base: every read equals the same read
of the stacked rows, ids are file offset + row, and an estimate over the shards is the estimate
over one file holding them."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from gpupq.cli import app
from gpupq.io import ShardedArray, load_vectors
from gpupq.io import shards as shards_mod
from gpupq.outputs import check_outputs

from .helpers import cli_runner, clustered, read_everything, refused
from .io_writers import write_arrow, write_bin, write_vecs

CUTS = (0, 700, 701, 1900, 3000)  # unequal shards, one of a single row


def _write_npy_shards(folder, x, cuts=CUTS, prefix="part"):
    folder.mkdir(exist_ok=True)
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        np.save(folder / f"{prefix}{i:02d}.npy", x[a:b])


@pytest.fixture
def x():
    return clustered(3000, 16, seed=3)


def test_reads_equal_the_stacked_rows(tmp_path, x, monkeypatch):
    monkeypatch.setattr(shards_mod, "OPEN_SHARDS", 2)  # files closed and reopened as reads move
    _write_npy_shards(tmp_path / "s", x)
    ds = load_vectors(tmp_path / "s")
    arr = ds.array
    assert isinstance(arr, ShardedArray) and arr.shape == (3000, 16) and arr.dtype == np.float32
    for key in (slice(0, 3000), slice(650, 720), slice(700, 701), slice(701, 702), slice(5, 5), slice(2990, 4000)):
        np.testing.assert_array_equal(arr[key], x[key])
    np.testing.assert_array_equal(arr[slice(3, 2900, 97)], x[3:2900:97])
    np.testing.assert_array_equal(arr[-1], x[-1])
    np.testing.assert_array_equal(arr[700], x[700])
    ids = np.array([2999, 0, 700, 700, 1899, 701, 5, 1900])  # unsorted, repeated, at every boundary
    np.testing.assert_array_equal(arr[ids], x[ids])
    assert len(arr._open) <= 2
    np.testing.assert_array_equal(read_everything(ds, step=333), x)
    with pytest.raises(IndexError):
        arr[np.array([3000])]


def test_manifest_gives_global_ids(tmp_path, x):
    _write_npy_shards(tmp_path / "s", x)
    man = load_vectors(tmp_path / "s").array.manifest()
    assert [m["rows"] for m in man] == [700, 1, 1199, 1100]
    assert [m["offset"] for m in man] == [0, 700, 701, 1900]
    assert [m["path"].rsplit("/", 1)[1] for m in man] == ["part00.npy", "part01.npy", "part02.npy", "part03.npy"]


def test_directory_skips_hidden_and_other_files_glob_sorts(tmp_path, x):
    folder = tmp_path / "s"
    _write_npy_shards(folder, x)
    (folder / "README.txt").write_text("not vectors")
    np.save(folder / ".hidden.npy", x[:5])
    (folder / "sub").mkdir()
    np.save(folder / "sub" / "inner.npy", x[:5])
    assert load_vectors(folder).n == 3000
    # a pattern is matched and sorted: part03 then the rest is still path order
    ds = load_vectors(str(folder / "part0[13].npy"))
    np.testing.assert_array_equal(ds.chunk(0, ds.n), np.concatenate([x[700:701], x[1900:3000]]))
    assert load_vectors(str(tmp_path / "**" / "*.npy")).n == 3000 + 5  # ** descends (hidden skipped)


WRITERS = {
    "fbin": lambda path, rows: write_bin(path, rows, "<f4"),
    "parquet": lambda path, rows: write_arrow(path, rows, "parquet"),  # skipped without pyarrow
}


@pytest.mark.parametrize("ext", list(WRITERS))
def test_other_formats_in_shards(tmp_path, x, ext):
    folder = tmp_path / ext
    folder.mkdir()
    for i, (a, b) in enumerate(itertools.pairwise(CUTS)):
        WRITERS[ext](folder / f"part-{i}.{ext}", x[a:b])
    np.testing.assert_array_equal(read_everything(load_vectors(folder), step=500), x)


@pytest.mark.parametrize("ext", ["npy", "fbin", "fvecs", "parquet"])
def test_empty_files_are_skipped_alone_refused(tmp_path, x, ext):
    """A file with no rows (a writer's empty part) holds nothing to read: skipped within a
    collection (listed with 0 rows), refused on its own, and a collection of only such files
    is refused."""
    folder = tmp_path / "s"
    folder.mkdir()
    empty = folder / f"part-1.{ext}"
    if ext == "npy":
        np.save(empty, np.zeros((0, 16), np.float32))
    elif ext == "fbin":
        write_bin(empty, np.zeros((0, 16), np.float32), "<f4")
    elif ext == "fvecs":
        empty.write_bytes(b"")
    else:
        write_arrow(empty, np.zeros((0, 16), np.float32), "parquet")
    refused(load_vectors, empty, match="empty")
    refused(load_vectors, folder, match="every file is empty")
    full = {"npy": np.save, "fbin": lambda p, r: write_bin(p, r, "<f4"), "parquet": WRITERS.get("parquet")}
    write = full.get(ext) or (lambda p, r: write_vecs(p, r, "<f4"))
    write(folder / f"part-0.{ext}", x[:700])
    write(folder / f"part-2.{ext}", x[700:])
    ds = load_vectors(folder)
    assert [m["rows"] for m in ds.array.manifest()] == [700, 0, 2300]
    np.testing.assert_array_equal(read_everything(ds, step=333), x)


def test_refusals_are_one_line(tmp_path, x):
    refused(load_vectors, str(tmp_path / "none" / "*.npy"), match="matches no files")
    (tmp_path / "empty").mkdir()
    refused(load_vectors, tmp_path / "empty", match="holds no vector files")
    mixed = tmp_path / "mixed"
    _write_npy_shards(mixed, x)
    write_bin(mixed / "z.fbin", x[:10], "<f4")
    refused(load_vectors, mixed, match="mixes formats")
    dims = tmp_path / "dims"
    _write_npy_shards(dims, x)
    np.save(dims / "part99.npy", x[:10, :8])
    refused(load_vectors, dims, match="part99.npy: has 8 dimensions where .*part00.npy has 16")
    types = tmp_path / "types"
    _write_npy_shards(types, x)
    np.save(types / "part99.npy", x[:10].astype(np.float16))
    refused(load_vectors, types, match="part99.npy: holds float16 values")


def test_outputs_checked_against_every_file(tmp_path, x):
    folder = tmp_path / "s"
    _write_npy_shards(folder, x)
    for data in (str(folder), str(folder / "*.npy")):
        refused(check_outputs, [("--csv", folder / "part02.npy", "csv")], [data], match="is an input of this run")
    assert check_outputs([("--csv", tmp_path / "out.csv", "csv")], [str(folder)])


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_estimate_over_shards_is_the_estimate_over_one_file(tmp_path, x, metric):
    _write_npy_shards(tmp_path / "s", x)
    np.save(tmp_path / "all.npy", x)
    args = ["--m", "4", "--nlist", "16", "--nprobe", "4", "--rerank", "40", "--metric", metric, "--json", "-q"]
    runner = cli_runner()
    one = runner.invoke(app, ["estimate", "--data", str(tmp_path / "all.npy"), *args])
    many = runner.invoke(app, ["estimate", "--data", str(tmp_path / "s" / "*.npy"), *args])
    assert one.exit_code == 0 and many.exit_code == 0, many.stderr
    a, b = json.loads(one.stdout), json.loads(many.stdout)
    assert b["dataset"]["source"].endswith("(4 files)")
    assert [s["offset"] for s in b["dataset"]["shards"]] == [0, 700, 701, 1900]
    assert "shards" not in a["dataset"]
    for ra, rb in zip(a["results"], b["results"], strict=True):
        for key in ("recall", "recall_rerank", "memory"):
            assert ra[key] == rb[key], key


@pytest.mark.parametrize("fixed", [True, False])
def test_parquet_files_of_a_collection_are_read_by_row_group(tmp_path, x, fixed, monkeypatch):
    """No temporary copy: each read decodes the row groups its rows are in (128 rows each
    here), a pass in chunks decodes each group once, and rows read by id equal the ndarray's."""
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from gpupq.io.arrow import RowGroupArray
    from gpupq.io.lazy import LazyArray

    folder = tmp_path / "pq"
    folder.mkdir()
    for i, (a, b) in enumerate(itertools.pairwise(CUTS)):
        write_arrow(folder / f"part-{i}.parquet", x[a:b], "parquet", fixed=fixed)
    monkeypatch.setattr(LazyArray, "_materialise", lambda self: pytest.fail("a temporary copy was made"))
    reads = []
    real = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", lambda self, g, **k: reads.append(g) or real(self, g, **k))
    ds = load_vectors(folder)
    assert all(isinstance(ds.array._file(i), RowGroupArray) for i in range(len(ds.array.paths)))
    np.testing.assert_array_equal(read_everything(ds, step=100), x)
    ds = load_vectors(folder)  # afresh: no group kept from those reads
    reads.clear()
    np.testing.assert_array_equal(np.concatenate([ds.chunk(s, min(ds.n, s + 100)) for s in range(0, ds.n, 100)]), x)
    groups = sum(-(-(b - a) // 128) for a, b in itertools.pairwise(CUTS) if b > a)
    assert len(reads) == groups  # each group once, though 100-row chunks cross their edges
    ids = np.random.default_rng(0).permutation(len(x))[:300]
    np.testing.assert_array_equal(ds.rows(ids), x[ids])
    np.testing.assert_array_equal(ds.array[np.array([-1, 0])], x[[-1, 0]])


def test_a_damaged_parquet_row_group_is_one_line_naming_the_file(tmp_path, x, monkeypatch):
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "pq"
    folder.mkdir()
    write_arrow(folder / "a.parquet", x[:1000], "parquet")
    write_arrow(folder / "b.parquet", x[1000:], "parquet")
    ds = load_vectors(folder)
    real = pq.ParquetFile.read_row_group

    def short(self, g, **k):  # a writer that lied in its metadata: fewer rows than declared
        t = real(self, g, **k)
        return t.slice(0, 5) if g == 3 else t

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", short)
    text = refused(ds.chunk, 0, 1000)
    assert "a.parquet:emb: row group 3 holds 5 rows, its metadata declares 128" in text
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", lambda *a, **k: (_ for _ in ()).throw(pa.ArrowInvalid("bad")))
    assert "b.parquet:emb: damaged data" in refused(ds.chunk, 1500, 1600)
