"""Dataset: float32 reads (unit rows under cosine) and validation of the values computed on."""

import numpy as np
import pytest

from gpupq.errors import GpupqError
from gpupq.io import Dataset, load_npy

from .helpers import clustered
from .io_writers import _save


def test_cosine_rows_are_normalised():
    ds = Dataset(clustered(50, 8), "x", metric="cosine")
    np.testing.assert_allclose(np.linalg.norm(ds.rows(np.arange(50)), axis=1), 1.0, rtol=1e-6)


def test_nan_rows_are_counted(tmp_path):
    x = clustered(1000, 8)
    x[[3, 500, 501], 2] = np.nan
    x[700, 0] = np.inf
    with pytest.raises(GpupqError, match=r"4 of 1000 rows contain NaN or Inf \(first at row 3\)"):
        load_npy(_save(tmp_path, x)).validate(chunk=128)


def test_zero_rows_under_cosine(tmp_path):
    x = clustered(1000, 8)
    x[[10, 20]] = 0
    ds = load_npy(_save(tmp_path, x), metric="cosine")
    with pytest.raises(GpupqError, match="2 rows are all zeros"):
        ds.validate(chunk=100)
    load_npy(_save(tmp_path, x)).validate()  # fine under l2


# Values that only go bad in float32: validation runs on what is computed on.
@pytest.mark.parametrize(
    "make,metric,message",
    [
        (lambda: np.full((50, 4), 1e39), "l2", r"50 of 50 rows hold values beyond float32's range .*first at row 0"),
        (
            lambda: np.vstack([clustered(49, 4).astype(np.float64), np.full((1, 4), 1e-50)]),
            "l2",
            r"1 of 50 rows are nonzero but become all zeros in float32 .*first at row 49.*scale the vectors up",
        ),
        (lambda: np.full((50, 4), 1e-300), "ip", "50 of 50 rows are nonzero but become all zeros in float32"),
        (
            lambda: clustered(50, 4) * np.float32(1e19),
            "l2",
            r"squared norm .*too large for float32 .*scale the vectors down",
        ),
        (lambda: clustered(50, 4) * np.float32(1e19), "ip", "scale the vectors down"),
        (lambda: (clustered(50, 4) * 1e18).clip(-9e18, 9e18).astype(np.int64), "l2", "scale the vectors down"),
        (lambda: clustered(50, 4) * np.float32(1e-20), "l2", r"too small for float32 .*scale the vectors up"),
        (lambda: np.zeros((50, 4), np.float32), "l2", "all vectors are zero"),
        (lambda: np.zeros((50, 4), np.uint8), "ip", "all vectors are zero"),
    ],
)
def test_validate_checks_the_float32_values_computed_on(tmp_path, make, metric, message):
    ds = load_npy(_save(tmp_path, make()), metric=metric)
    with pytest.raises(GpupqError, match=message) as info:
        ds.validate(chunk=16)
    assert "\n" not in str(info.value)


def test_what_float32_holds_is_fine(tmp_path):
    x = clustered(100, 4).astype(np.float64)
    x[[3, 70]] = 0  # a few zero rows under l2
    load_npy(_save(tmp_path, x)).validate(chunk=16)
    load_npy(_save(tmp_path, x * 1e17)).validate(chunk=16)  # squared norms about 1e36
    load_npy(_save(tmp_path, x * 1e-14)).validate(chunk=16)  # squared norms about 1e-26
    load_npy(_save(tmp_path, x[:3] * 1e-60), metric="cosine").validate()  # direction is all cosine needs


def test_cosine_normalises_before_the_float32_cast(tmp_path):
    """Cosine is scale-invariant: float64 rows of 1e300 or 1e-300, and float32 rows whose squares
    overflow float32, give the same unit rows."""
    base = clustered(60, 5, seed=4).astype(np.float64)
    unit = (base / np.linalg.norm(base, axis=1, keepdims=True)).astype(np.float32)
    scales = 10.0 ** np.random.default_rng(0).integers(-300, 300, size=(60, 1))
    for x in (base * 1e300, base * 1e-300, base * scales, (base * 1e30).astype(np.float32), base * 1e-40):
        ds = load_npy(_save(tmp_path, x), metric="cosine")
        ds.validate(chunk=16)
        np.testing.assert_allclose(ds.chunk(0, 60), unit, rtol=2e-6, atol=1e-6)
        np.testing.assert_allclose(ds.rows(np.array([59, 2, 30])), unit[[59, 2, 30]], rtol=2e-6, atol=1e-6)


def test_estimate_refuses_data_that_vanishes_in_float32(tmp_path):
    """float64 values of 1e-50 became zeros: recall 1.0 raw and 0.0 re-ranked, without a word."""
    import gpupq

    ds = load_npy(_save(tmp_path, clustered(2000, 8).astype(np.float64) * 1e-50))
    cfg = gpupq.EstimateConfig(m=4, nlist=16, nbits=4, min_time=0)
    with pytest.raises(GpupqError, match="become all zeros in float32"):
        gpupq.estimate(ds, cfg, "numpy")
