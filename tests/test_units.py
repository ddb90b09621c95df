"""Units: sizes parsed and printed."""

from __future__ import annotations

import pytest

from gpupq.errors import GpupqError
from gpupq.units import format_size, parse_size


@pytest.mark.parametrize(
    "text,expect",
    [
        ("500MB", 500 * 10**6),
        ("20GB", 20 * 10**9),
        ("1.5GiB", 3 * 2**29),
        ("123", 123),
        (" 16 gb ", 16 * 10**9),
        ("2k", 2000),
        ("0", 0),
        ("lots", None),
        ("-1GB", None),
        ("1e9", None),
        ("5 parsecs", None),
        ("", None),
        ("nan", None),
    ],
)
def test_parse_size(text, expect):
    if expect is None:
        with pytest.raises(GpupqError, match="is not a size") as info:
            parse_size(text)
        text = str(info.value)
        assert text and "\n" not in text and "\r" not in text, repr(text)  # one line
    else:
        assert parse_size(text) == expect


@pytest.mark.parametrize(
    "nbytes,expect",
    [
        (1000, "1 kB"),
        (1440, "1.44 kB"),
        (389_000, "389 kB"),
        (999_499, "999 kB"),
        (999_500, "1 MB"),
        (4_294_967_296, "4.29 GB"),
        (10**15, "1 PB"),
    ],
)
def test_format_size(nbytes, expect):
    assert format_size(nbytes) == expect


@pytest.mark.parametrize("text", ["500MB", "20GB", "1kB", "123"])
def test_format_size_reads_back_as_parse_size_writes(text):
    """Decimal units both ways: what parse_size reads, format_size prints the same way."""
    assert parse_size(format_size(parse_size(text)).replace(" bytes", "")) == parse_size(text)
