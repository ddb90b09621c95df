"""The one setup path: settings checked by their rules, the metric agreed, the split, the size
checks, and what a Python user hands open_session."""

from __future__ import annotations

import numpy as np
import pytest

from gpupq.errors import GpupqError
from gpupq.grid import Grid
from gpupq.io import Dataset, make_synthetic
from gpupq.session import RunConfig, check_sizes, open_session
from gpupq.sweep import sweep

from .helpers import clustered


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(metric="L2"), "--metric 'L2' is not one of l2, ip, cosine"),
        (dict(metric="hamming"), "--metric 'hamming'"),
        (dict(k=0), "-k must be at least 1"),
        (dict(seed=2**63), "--seed must be between 0 and 4294967295"),
        (dict(min_time=float("nan")), "--min-time must be a finite number"),
        (dict(threads=0), "--threads must be at least 1"),
        (dict(n_total=-5), "--n-total must be between 1"),
        (dict(n_total=10**30), "--n-total must be between 1"),
        (dict(queries=0), "--queries must be at least 1"),
    ],
)
def test_run_settings_are_refused_by_their_rule(change, message):
    with pytest.raises(GpupqError, match=message.replace("(", r"\(")):
        RunConfig(**change).check()


def test_open_session_takes_a_plain_array():
    x = clustered(2000, 16, seed=1)
    with open_session(x, RunConfig(queries=20, timing=False), "numpy") as session:
        assert session.split.n_base == 1980 and session.dataset.metric == "l2"
    with pytest.raises(GpupqError, match="2-D array"):
        open_session(x[0], RunConfig(), "numpy")
    with pytest.raises(GpupqError, match="Dataset or an"):
        open_session("vectors.npy", RunConfig(), "numpy")


def test_a_closed_session_says_so():
    session = open_session(make_synthetic(2000, 16), RunConfig(queries=20, timing=False), "numpy")
    session.close()
    with pytest.raises(GpupqError, match="this session is closed"):
        sweep(session, Grid(nlist=[8], m=[4], nprobe=[1]), session.config)
    session.close()  # twice is harmless


def test_n_total_below_the_measured_base_is_refused():
    with pytest.raises(GpupqError, match="smaller than the 1,980 vectors measured"):
        open_session(make_synthetic(2000, 16), RunConfig(queries=20, n_total=1), "numpy")


def test_dataset_refuses_what_it_would_misread():
    x = np.ones((10, 4), dtype=np.float32)
    for bad, message in [
        (dict(array=x, metric="L2"), "metric 'L2'"),
        (dict(array=x.astype(np.complex64)), "not real numbers"),
        (dict(array=x[:, 0]), "2-D array"),
    ]:
        with pytest.raises(GpupqError, match=message):
            Dataset(source="x", **{"metric": "l2", **bad})


def test_size_checks_name_the_setting():
    with pytest.raises(GpupqError, match="-k 50 is larger than the base"):
        check_sizes(40, k=50)
    with pytest.raises(GpupqError, match="fewer than --nlist 64"):
        check_sizes(40, k=10, nlist=64)
    with pytest.raises(GpupqError, match="2\\^nbits=256"):
        check_sizes(100, k=10, nbits=8)


def test_unit_length_vectors_under_l2_get_a_word_about_cosine():
    x = clustered(2000, 16, seed=2)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    with open_session(unit, RunConfig(queries=20), "numpy") as session:
        assert "unit length" in (session.metric_hint() or "")
    with open_session(Dataset(unit, "u", "cosine"), RunConfig(queries=20), "numpy") as session:
        assert session.metric_hint() is None
    with open_session(x, RunConfig(queries=20), "numpy") as session:
        assert session.metric_hint() is None
