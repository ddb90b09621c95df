"""Small files in every format, written for the reader tests (test_io_*.py and
test_hostile_inputs.py): the writers, the (500, 12) data ``X`` and, per format, how to write
it and the float32 rows it must read back as (``CASES``)."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import clustered


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

# estimate options that keep a CLI run on small data fast
FAST_ARGS = ["--m", "4", "--nlist", "16", "--nbits", "6", "--json", "-q"]


def _save(tmp_path, arr, name="bad.npy", **kw):
    path = tmp_path / name
    np.save(path, arr, **kw)
    return path
