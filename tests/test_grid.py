"""Grid: the rules that fill the axes left empty, and lists parsed from the command line."""

from __future__ import annotations

import pytest

from gpupq.errors import GpupqError
from gpupq.grid import Grid, default_m, default_nlist, parse_ints


def test_default_grid_rules():
    values, _ = default_nlist(1_000_000)
    assert values == [4096, 8192]  # powers of two within 4√N = 4000 .. 16√N = 16000
    assert default_nlist(6000)[0] == [128]  # 4√N = 310..1239, but at most N/39 = 153
    assert default_m(128)[0] == [8, 16, 32, 64]
    assert default_m(96)[0] == [8, 16, 32]  # powers of two dividing d, up to d/2 bytes
    assert parse_ints("1-256", "--nprobe") == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert parse_ints("3-20,5", "--nprobe") == [3, 5, 6, 12, 20]
    with pytest.raises(GpupqError, match="--nprobe"):
        parse_ints("8-2", "--nprobe")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(opq=["off"]), r"Grid\(opq=\['off'\]\): give a list of True/False"),
        (dict(nprobe=[]), r"Grid\(nprobe=\[\]\) has no value"),
        (dict(m=[8.5]), "8.5 is not a whole number"),
        (dict(m="16"), "give a list of whole numbers"),
        (dict(stores=[1]), "give store names"),
    ],
)
def test_grid_refuses_values_that_would_be_misread(kw, message):
    with pytest.raises(GpupqError, match=message):
        Grid(**{"nlist": [16], "m": [8], **kw})


def test_grid_takes_numpy_integers_and_writes_plain_json():
    import json

    import numpy as np

    grid = Grid(nlist=np.array([16, 32]), m=[np.int64(8)], nprobe=list(np.arange(1, 3)))
    assert json.loads(json.dumps(grid.to_dict()))["nlist"] == [16, 32]
    assert all(type(v) is int for v in grid.m + grid.nprobe)


@pytest.mark.parametrize(
    ("kw", "message"),
    [(dict(m=""), "--m ''"), (dict(nlist=" "), "--nlist ' '"), (dict(nprobe="0"), "--nprobe must be at least 1")],
)
def test_options_given_empty_are_errors_not_defaults(kw, message):
    from gpupq.grid import check_grid, grid_from_options

    with pytest.raises(GpupqError, match=message):
        check_grid(grid_from_options(**{"m": "8", "nlist": "16", **kw}), 32, 1000, 10)


def test_grid_from_options_reads_zero_and_off_as_no_rerank():
    from gpupq.grid import grid_from_options

    assert grid_from_options(rerank="off,50").rerank == [0, 50]
    assert grid_from_options(rerank="0,5-20").rerank == [0, 5, 10, 20]
