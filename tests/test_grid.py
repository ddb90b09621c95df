"""Grid: the rules that fill the axes left empty, and lists parsed from the command line."""

from __future__ import annotations

import pytest

from gpupq.errors import GpupqError
from gpupq.grid import default_m, default_nlist, parse_ints


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
