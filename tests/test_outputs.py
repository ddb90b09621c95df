"""Outputs can never destroy an input: every path checked before any work, regular files
replaced atomically, devices and FIFOs written through, interrupted runs kept apart."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from gpupq.cli import app
from gpupq.errors import GpupqError
from gpupq.outputs import check_outputs, write_output

from .helpers import cli_runner, clustered

SMALL = ["--n", "3000", "--d", "16", "--nlist", "16", "--m", "4", "--nprobe", "1,4", "--rerank", "0", "--no-timing"]


def _sweep(*extra: str) -> object:
    return cli_runner().invoke(app, ["sweep", "--synthetic", *SMALL, "-q", *extra])


@pytest.fixture
def npy(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, clustered(3000, 16, seed=1))
    return path


def _digest(path) -> bytes:
    return path.read_bytes()


@pytest.mark.parametrize(
    ("option", "spell"),
    [
        ("--csv", lambda p: str(p)),
        ("--plot", lambda p: str(p)),
        ("--csv", lambda p: str(p.parent / "." / p.name)),  # another spelling
        ("--csv", lambda p: str(p.parent / "link.npy")),  # a symbolic link to it
    ],
)
def test_an_output_naming_an_input_is_refused_before_any_work(npy, option, spell, monkeypatch):
    os.symlink(npy, npy.parent / "link.npy")
    before = _digest(npy)
    called = []
    monkeypatch.setattr("gpupq.sweep.sweep", lambda *a, **k: called.append(1))
    args = ["sweep", "--npy", str(npy), *SMALL[4:], option, spell(npy)]
    res = cli_runner().invoke(app, args)
    assert res.exit_code == 2
    assert "is an input of this run" in res.stderr and res.stderr.count("\n") == 1
    assert _digest(npy) == before and not called


def test_queries_file_is_an_input_too(npy, tmp_path):
    res = cli_runner().invoke(app, ["sweep", "--npy", str(npy), "--queries-file", str(npy), "--csv", str(npy)])
    assert res.exit_code == 2 and "is an input of this run" in res.stderr


def test_two_outputs_on_one_file_are_refused(tmp_path):
    target = tmp_path / "same.png"
    res = _sweep("--csv", str(target), "--plot", str(target))
    assert res.exit_code == 2 and "also --csv's output" in res.stderr
    assert not target.exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: "", "give a file name"),
        (lambda d: "-", "give a file name"),
        (lambda d: str(d), "is a directory"),
        (lambda d: str(d / "nowhere" / "x.csv"), "does not exist"),
    ],
)
def test_unwritable_targets_are_refused_before_any_work(tmp_path, make, message):
    res = _sweep("--csv", make(tmp_path))
    assert res.exit_code == 2 and message in res.stderr and res.stderr.count("\n") == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        res = _sweep("--csv", str(folder / "x.csv"))
        assert res.exit_code == 2 and "cannot write in" in res.stderr
    finally:
        folder.chmod(0o700)


def test_read_only_file_is_refused_even_for_root(tmp_path):
    target = tmp_path / "keep.csv"
    target.write_text("mine\n")
    target.chmod(0o444)
    res = _sweep("--csv", str(target))
    assert res.exit_code == 2 and "read-only" in res.stderr
    assert target.read_text() == "mine\n"


def test_plot_format_follows_the_extension(tmp_path):
    pytest.importorskip("matplotlib")
    pdf, svg = tmp_path / "f.pdf", tmp_path / "f.svg"
    assert _sweep("--plot", str(pdf)).exit_code == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    assert _sweep("--plot", str(svg)).exit_code == 0
    assert b"<svg" in svg.read_bytes()[:400]
    res = _sweep("--plot", str(tmp_path / "f.jpg"))
    assert res.exit_code == 2 and ".png, .pdf, .svg" in res.stderr


def test_devices_and_fifos_are_written_through_never_replaced(tmp_path):
    out = check_outputs([("--csv", "/dev/null", "csv")], [])[0]
    assert out.through and out.partial == out
    write_output(out, b"a,b\n")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # still the device
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    out = check_outputs([("--csv", str(fifo), "csv")], [])[0]
    assert out.through
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path):
    old = os.umask(0o022)
    try:
        new = tmp_path / "new.csv"
        write_output(check_outputs([("--csv", str(new), "csv")], [])[0], b"x\n")
        assert stat.S_IMODE(os.stat(new).st_mode) == 0o644  # not mkstemp's 0600
        kept = tmp_path / "kept.csv"
        kept.write_text("old\n")
        kept.chmod(0o640)
        write_output(check_outputs([("--csv", str(kept), "csv")], [])[0], b"new\n")
        assert kept.read_text() == "new\n" and stat.S_IMODE(os.stat(kept).st_mode) == 0o640
    finally:
        os.umask(old)


def test_a_failed_write_leaves_the_earlier_file_whole(tmp_path, monkeypatch):
    target = tmp_path / "points.csv"
    target.write_text("complete\n")
    out = check_outputs([("--csv", str(target), "csv")], [])[0]

    def full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(GpupqError, match=r"cannot write --csv .*No space left on device"):
        write_output(out, b"new\n")
    assert target.read_text() == "complete\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["points.csv"]  # no temporary left


def test_an_interrupted_sweep_never_replaces_a_complete_file(tmp_path, monkeypatch):
    """Ctrl-C after the first build: exit 130, the earlier complete CSV untouched, the partial
    points in a file whose name says so."""
    import gpupq.sweep as sweep_mod

    target = tmp_path / "points.csv"
    assert _sweep("--m", "4,8", "--csv", str(target)).exit_code == 0
    complete = target.read_text()
    real = sweep_mod._sweep_build
    calls = []

    def stop_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_mod, "_sweep_build", stop_second)
    res = cli_runner().invoke(app, ["sweep", "--synthetic", *SMALL, "--m", "4,8", "-q", "--csv", str(target)])
    assert res.exit_code == 130
    assert target.read_text() == complete
    partial = tmp_path / "points.partial.csv"
    assert "partial results written to" in res.stderr and partial.exists()
    assert 1 < len(partial.read_text().splitlines()) < len(complete.splitlines())


def test_outputs_go_through_json_too(tmp_path):
    target = tmp_path / "p.csv"
    res = _sweep("--csv", str(target), "--json")
    assert res.exit_code == 0
    assert len(target.read_text().splitlines()) == 1 + len(json.loads(res.stdout)["points"])


def test_stdout_on_a_full_disk_is_one_line_and_exit_2():
    """`gpupq ... > /dev/full`: one line on stderr, exit 2, no traceback (a real process: the
    interpreter's own last flush must not fail either)."""
    import subprocess
    import sys

    args = ["sweep", "--synthetic", *SMALL, "-q", "--json"]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "gpupq", *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120
        )
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == "error: cannot write to standard output: No space left on device"
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
