"""Every option's rule declared once: the same words refuse a bad value from the command line and
from the library."""

from __future__ import annotations

import math

import pytest

from gpupq.errors import GpupqError
from gpupq.params import PARAMS, check, help_for


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("k", 0, "-k must be at least 1 (got 0)"),
        ("k", True, "-k must be a number (got True)"),
        ("seed", -1, "--seed must be between 0 and 4294967295 (got -1)"),
        ("min_time", 601, "--min-time must be between 0 and 600 seconds (got 601)"),
        ("min_time", math.nan, "--min-time must be a finite number (got nan)"),
        ("nbits", 9, "--nbits must be between 4 and 8 (got 9)"),
        ("target_recall", 0, "--target-recall must be more than 0 and at most 1 (got 0)"),
        ("target_recall", 1.5, "--target-recall must be more than 0 and at most 1 (got 1.5)"),
        ("min_qps", math.inf, "--min-qps must be a finite number (got inf)"),
        ("min_qps", -3, "--min-qps must be more than 0 (got -3)"),
        ("rerank_store", "fp8", "--rerank-store 'fp8' is not one of fp32, fp16, sq8"),
    ],
)
def test_each_rule_refuses_in_one_line(name, value, message):
    with pytest.raises(GpupqError) as info:
        check(name, value)
    assert str(info.value) == message


@pytest.mark.parametrize(("name", "value"), [("k", 1), ("target_recall", 1.0), ("min_qps", 0.5), ("nbits", 4)])
def test_the_bounds_that_are_allowed(name, value):
    check(name, value)


def test_help_shows_the_default():
    assert help_for("nlist") == f"{PARAMS['nlist'].help} (default 128)"
    assert help_for("threads") == PARAMS["threads"].help  # no default to show: the cores found at run time


def test_the_cli_and_the_library_refuse_in_the_same_words():
    from gpupq.cli import app
    from gpupq.estimate import EstimateConfig

    from .helpers import cli_runner

    res = cli_runner().invoke(app, ["estimate", "--synthetic", "--nbits", "9"])
    with pytest.raises(GpupqError) as info:
        EstimateConfig(nbits=9).check()
    assert res.exit_code == 2 and res.stderr.strip() == f"error: {info.value}"
