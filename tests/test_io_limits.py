"""The inflation limit (gpupq/io/limits.py): who sets it (--inflate-limit, $GPUPQ_INFLATE_LIMIT,
the default), a bad one refused, and a write past it or past the free space refused before it
starts. (The readers applying it are in test_hostile_inputs.py.)"""

from __future__ import annotations

import pytest

import gpupq.io.limits
from gpupq.errors import GpupqError
from gpupq.io.limits import DEFAULT_INFLATE_LIMIT, INFLATE_LIMIT_ENV, _check_room, resolve_inflate_limit


def test_default_limit(monkeypatch):
    monkeypatch.delenv(INFLATE_LIMIT_ENV, raising=False)
    assert resolve_inflate_limit() == (DEFAULT_INFLATE_LIMIT, "the default") == (16 * 10**9, "the default")


@pytest.mark.parametrize(("text", "size"), [("500MB", 500 * 10**6), ("1.5GiB", 3 * 2**29), (" 12345 ", 12345)])
def test_limit_from_the_environment(monkeypatch, text, size):
    monkeypatch.setenv(INFLATE_LIMIT_ENV, text)
    assert resolve_inflate_limit() == (size, "GPUPQ_INFLATE_LIMIT")


def test_option_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(INFLATE_LIMIT_ENV, "1kB")
    assert resolve_inflate_limit(0) == (0, "--inflate-limit")
    assert resolve_inflate_limit(2000) == (2000, "--inflate-limit")


def test_empty_environment_value_is_the_default(monkeypatch):
    monkeypatch.setenv(INFLATE_LIMIT_ENV, "  ")
    assert resolve_inflate_limit() == (DEFAULT_INFLATE_LIMIT, "the default")


@pytest.mark.parametrize("text", ["lots", "12XB", "-5MB"])
def test_bad_environment_value_is_refused(monkeypatch, text):
    monkeypatch.setenv(INFLATE_LIMIT_ENV, text)
    with pytest.raises(GpupqError, match=f"GPUPQ_INFLATE_LIMIT='{text}' is not a size; write e.g. 500MB"):
        resolve_inflate_limit()


def test_negative_option_is_refused():
    with pytest.raises(GpupqError, match=r"--inflate-limit must be 0 or more bytes \(got -1\)"):
        resolve_inflate_limit(-1)


def test_check_room_refuses_past_the_limit(monkeypatch):
    monkeypatch.setattr(gpupq.io.limits.shutil, "disk_usage", lambda _: (10**12, 0, 10**12))
    _check_room(1000, "x.npz:emb", 1000, "save it with np.save")  # at the limit: allowed
    with pytest.raises(GpupqError) as err:
        _check_room(1001, "x.npz:emb", 1000, "save it with np.save")
    text = str(err.value)
    assert text.startswith("x.npz:emb: reading it needs 1 kB of temporary disk space, more than the inflation limit")
    assert "(--inflate-limit)" in text and text.endswith("or save it with np.save")


def test_check_room_refuses_past_the_free_space(monkeypatch):
    """The temporary directory's free space bounds it too, less a margin (a twentieth of the
    disk, at most 1 GB); a directory whose space cannot be read is not refused."""
    monkeypatch.setattr(gpupq.io.limits.shutil, "disk_usage", lambda _: (10**12, 0, 10**9 + 2 * 10**8))
    _check_room(2 * 10**8, "x.npz:emb", None, "help")
    with pytest.raises(GpupqError, match=r"needs 400 MB of temporary disk space but .* has 1.2 GB free"):
        _check_room(4 * 10**8, "x.npz:emb", None, "help")

    def unreadable(_):
        raise OSError("no statfs")

    monkeypatch.setattr(gpupq.io.limits.shutil, "disk_usage", unreadable)
    _check_room(4 * 10**8, "x.npz:emb", None, "help")
