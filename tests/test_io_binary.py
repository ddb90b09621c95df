"""TEXMEX .fvecs/.ivecs/.bvecs and big-ann-benchmarks .fbin: files that do not add up."""

from __future__ import annotations

import numpy as np
import pytest

from gpupq.errors import GpupqError
from gpupq.io import load_vectors

from .io_writers import CASES, X, write_bin, write_vecs


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
