"""Pinned, double-buffered copies of host chunks to a GPU (gpupq/transfer.py), over the stand-in
CuPy: every chunk arrives intact although the next one is copied before it is handed out, and the
device and host wait where the ordering needs them to, no more."""

from __future__ import annotations

import numpy as np

from gpupq.backends import NumpyBackend
from gpupq.transfer import device_chunks

from . import fake_cupy
from .helpers import install_fake_cupy


def _chunks(sizes: list[int], d: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    out, start = [], 0
    for n in sizes:
        out.append((np.arange(start, start + n), rng.standard_normal((n, d)).astype(np.float32)))
        start += n
    return out


def test_each_chunk_arrives_intact_while_the_next_is_copied(monkeypatch):
    """Chunk i is handed out after chunk i + 1's copy is queued (they overlap on a GPU): with the
    two slots mixed up the consumer would read chunk i + 1's rows. A shorter last chunk reuses a
    slot; the data crosses once."""
    be = install_fake_cupy(monkeypatch)
    chunks = _chunks([40, 40, 40, 40, 17])
    log = []

    def wait_event(stream, event):
        log.append(("copy" if stream.non_blocking else "compute", event))

    monkeypatch.setattr(fake_cupy._Stream, "wait_event", wait_event)
    seen = []
    with fake_cupy.counting() as t:
        for i, (ids, x) in enumerate(device_chunks(be, chunks)):
            assert isinstance(x, fake_cupy.ndarray)
            np.testing.assert_array_equal(ids, chunks[i][0])
            log.append(("use", i))
            seen.append(np.array(x._a))  # its rows when handed out (read inside, not a counted sync)
    for got, (_, want) in zip(seen, chunks, strict=True):
        np.testing.assert_array_equal(got, want)  # as it was when handed out
    assert t.h2d_bytes == sum(x.nbytes for _, x in chunks)
    # the compute stream waits for each chunk's copy just before it is used
    uses = [k for k, e in enumerate(log) if e[0] == "use"]
    assert all(log[k - 1][0] == "compute" for k in uses)
    # the copy into a device buffer waits for the work on the chunk two back: chunks 2, 3, 4
    assert sum(1 for e in log if e[0] == "copy") == 3
    assert t.copy_waits == 3  # the host refills a pinned buffer once its last copy is done
    assert t.syncs == 0


def test_cpu_and_device_chunks_pass_as_they_are(monkeypatch):
    chunks = _chunks([5, 3])
    assert list(device_chunks(NumpyBackend(), chunks)) == chunks
    be = install_fake_cupy(monkeypatch)
    on_device = [(ids, be.asarray(x)) for ids, x in chunks]
    got = list(device_chunks(be, on_device))
    assert all(g[1] is o[1] for g, o in zip(got, on_device, strict=True))
