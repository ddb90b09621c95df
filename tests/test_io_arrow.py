"""Parquet/Arrow embedding columns: picking the column, and ragged lists."""

from __future__ import annotations

import numpy as np
import pytest

from gpupq.errors import GpupqError
from gpupq.io import load_vectors

from .io_writers import X


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
