"""The terminal side (gpupq/terminal.py): usage errors and gpupq's own errors as one line and an
exit code, a full disk or a closed pipe on stdout, Ctrl-C, and progress that can be turned off."""

from __future__ import annotations

import errno
import os
import sys
import types

import pytest
import typer

from gpupq.errors import GpupqError
from gpupq.terminal import progress_reporter, stdout_guard, user_errors

from .helpers import run_cli as run


@pytest.mark.parametrize(
    "args,message",
    [
        (["--metric", "foo"], "Invalid value for '--metric': 'foo' is not one of 'l2', 'ip', 'cosine'"),
        (["--format", "csv"], "Invalid value for '--format'"),
        (["--nope"], "No such option: --nope"),
        (["--n", "many"], "Invalid value for '--n'"),
        (["--m"], "Option '--m' requires an argument"),
        (["--seed", "-1"], "--seed must be between 0 and 4294967295 (got -1)"),
        (["--threads", "0"], "--threads must be at least 1 (got 0)"),
        (["--inflate-limit", "12XB"], "--inflate-limit '12XB' is not a size"),
    ],
)
def test_usage_errors_are_one_line(args, message):
    """typer's own errors (a bad choice, an unknown option, a missing value) get the same one
    line and exit code 2 as gpupq's, not a usage box."""
    res = run("estimate", "--synthetic", *args)
    assert res.exit_code == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert res.stdout == ""


def test_unknown_command_is_one_line():
    res = run("estimat")
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "No such command 'estimat'" in res.stderr


class _Unwritable:
    """A stdout whose writes and flushes fail with ``exc``."""

    def __init__(self, exc: OSError) -> None:
        self.exc = exc

    def write(self, text: str) -> int:
        raise self.exc

    def flush(self) -> None:
        raise self.exc

    def fileno(self) -> int:
        return 1


@pytest.fixture
def fd1_kept(monkeypatch):
    """stdout_guard points fd 1 at /dev/null after a failed write: here the terminal module's
    os.dup2 only records the target (pytest's own capture keeps the real one), so the test
    process's fd 1 is left alone."""
    moved = []

    def dup2(src: int, dst: int) -> None:
        moved.append(dst)
        os.close(src)

    fake_os = types.SimpleNamespace(open=os.open, devnull=os.devnull, O_WRONLY=os.O_WRONLY, dup2=dup2)
    monkeypatch.setattr("gpupq.terminal.os", fake_os)
    return moved


def test_stdout_guard_turns_a_failed_write_into_one_line_and_exit_2(monkeypatch, capsys, fd1_kept):
    monkeypatch.setattr(sys, "stdout", _Unwritable(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(typer.Exit) as info, stdout_guard():
        print("a result")
    assert info.value.exit_code == 2
    assert fd1_kept == [1]  # the interpreter's last flush then goes to /dev/null
    err = capsys.readouterr().err
    assert err == "error: cannot write to standard output: No space left on device\n"


def test_stdout_guard_closed_pipe_is_exit_2_without_a_message(monkeypatch, capsys, fd1_kept):
    monkeypatch.setattr(sys, "stdout", _Unwritable(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    with pytest.raises(typer.Exit) as info, stdout_guard():
        print("a result")
    assert info.value.exit_code == 2 and fd1_kept == [1]
    assert capsys.readouterr().err == ""


def test_stdout_guard_lets_a_good_write_through(capsys):
    with stdout_guard():
        print("a result")
    assert capsys.readouterr() == ("a result\n", "")


def test_user_errors_gpupq_error_is_one_line_exit_2(capsys):
    with pytest.raises(typer.Exit) as info, user_errors():
        raise GpupqError("--m 7 does not divide 32")
    assert info.value.exit_code == 2
    assert capsys.readouterr().err == "error: --m 7 does not divide 32\n"


def test_user_errors_out_of_memory_is_one_line_exit_2(capsys):
    with pytest.raises(typer.Exit) as info, user_errors():
        raise MemoryError
    assert info.value.exit_code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory") and err.count("\n") == 1


def test_user_errors_ctrl_c_is_exit_130(capsys):
    with pytest.raises(typer.Exit) as info, user_errors():
        raise KeyboardInterrupt
    assert info.value.exit_code == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_user_errors_lets_other_exceptions_through():
    with pytest.raises(ValueError, match="a bug"), user_errors():
        raise ValueError("a bug")


def test_progress_reporter_disabled_yields_none(capsys):
    with progress_reporter(enabled=False) as report:
        assert report is None
    with progress_reporter(enabled=False, eta=True) as report:
        assert report is None
    assert capsys.readouterr() == ("", "")


def test_progress_reporter_to_a_pipe_prints_each_phase_once(capsys):
    """Not a terminal (pytest captures stderr): each phase is one line on stderr as it starts."""
    with progress_reporter(enabled=True) as report:
        for done in range(3):
            report("ground truth", done, 3)
        report("train", 0, 1)
        report("ground truth", 3, 3)
    out, err = capsys.readouterr()
    assert out == "" and err == "ground truth ...\ntrain ...\n"
