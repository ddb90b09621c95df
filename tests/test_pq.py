import numpy as np
import pytest

from gpupq.errors import GpupqError
from gpupq.pq import ProductQuantizer

from .helpers import _mse, clustered


def test_shapes_and_dtypes(backend):
    """Catches wrong shapes, dtypes or code ranges of codebooks and codes on any backend."""
    x = clustered(3000, 16)
    pq = ProductQuantizer(16, 4, nbits=6).fit(backend, backend.asarray(x), np.random.default_rng(0))
    assert pq.codebooks.shape == (4, 64, 4)
    assert pq.codebooks.dtype == np.float32
    _, codes = _mse(backend, pq, x)
    assert codes.shape == (3000, 4) and codes.dtype == np.uint8
    assert codes.max() < 64


def test_reconstruction_error_falls_as_m_grows(backend):
    """Catches a broken sub-vector split or decode: finer quantizers must reconstruct better."""
    x = clustered(4000, 32, seed=1)
    errors = []
    for m in (2, 4, 8, 16):
        pq = ProductQuantizer(32, m, nbits=6).fit(backend, backend.asarray(x), np.random.default_rng(0))
        errors.append(_mse(backend, pq, x)[0])
    assert errors == sorted(errors, reverse=True), errors
    assert errors[-1] < 0.5 * errors[0]


def test_encode_picks_nearest_codeword(backend):
    """Catches encoding against the wrong sub-space or codeword, against brute force."""
    x = clustered(2000, 8, seed=2)
    pq = ProductQuantizer(8, 2, nbits=4).fit(backend, backend.asarray(x), np.random.default_rng(0))
    cb = backend.to_numpy(pq.codebooks)
    codes = backend.to_numpy(pq.encode(backend, backend.asarray(x)))
    for j in range(2):
        sub = x[:, j * 4 : (j + 1) * 4]
        expect = ((sub[:, None] - cb[j][None]) ** 2).sum(-1).argmin(1)
        np.testing.assert_array_equal(codes[:, j], expect)


def test_inner_tables(backend):
    """Catches a transposed or mis-split query table, against an einsum on the host."""
    x = clustered(1500, 8, seed=3)
    pq = ProductQuantizer(8, 4, nbits=4).fit(backend, backend.asarray(x), np.random.default_rng(0))
    q = x[:5]
    tab = backend.to_numpy(pq.inner_tables(backend, backend.asarray(q)))
    cb = backend.to_numpy(pq.codebooks)
    expect = np.einsum("njd,jkd->njk", q.reshape(5, 4, 2), cb)
    np.testing.assert_allclose(tab, expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m,nbits,size", [(16, 8, 16), (16, 4, 8), (12, 6, 9), (5, 5, 4), (7, 4, 4), (3, 7, 3)])
def test_packed_code_size(m, nbits, size):
    assert ProductQuantizer(m * 2, m, nbits).code_size == size


@pytest.mark.parametrize("nbits", [0, 3, 9, 16])
def test_nbits_out_of_range(nbits):
    with pytest.raises(GpupqError, match=r"--nbits must be between 4 and 8 \(got "):
        ProductQuantizer(16, 4, nbits)


def test_m_must_divide_d():
    with pytest.raises(GpupqError, match=r"not divisible by --m 5; valid m: 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 96"):
        ProductQuantizer(96, 5)
