"""Host chunks of the base to a GPU through pinned, double-buffered copies.

When the dataset does not stay on the device (:mod:`gpupq.resident`), the ground truth and the
adding read it chunk by chunk from the host. A plain ``cupy.asarray`` of each chunk copies from
pageable memory (staged by the driver, the host waiting for it) and nothing computes meanwhile.
Here each chunk is written into one of two page-locked host buffers and copied on a separate
stream into one of two device buffers while the previous chunk is computed: the device waits for
a copy only where it needs its data, and the host waits only to refill a pinned buffer whose copy
(two chunks back) is done.

Ordering, with two slots b = i mod 2 for chunk i:
- before chunk i's copy is queued, the copy stream waits (on the device) for the event recorded on
  the compute stream once chunk i - 2's work was queued: the device buffer is free again;
- before the host refills pinned buffer b, it waits for chunk i - 2's copy out of it;
- before chunk i is handed out, the compute stream waits (on the device) for its copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .backends import Backend


def device_chunks(be: Backend, chunks: Iterable[tuple[np.ndarray, Any]]) -> Iterator[tuple[np.ndarray, Any]]:
    """(ids (b,) int64, x (b, d) float32) chunks -> the same with x on the backend's device.

    On a CPU backend, and for chunks already on the device, they pass as they are; on a GPU host
    chunks go through :func:`_double_buffered`. ids stay on the host."""
    if not be.resident_stores:
        yield from chunks
        return
    yield from _double_buffered(be, chunks)


def _double_buffered(be: Backend, chunks: Iterable[tuple[np.ndarray, Any]]) -> Iterator[tuple[np.ndarray, Any]]:
    import cupyx

    cp = be.xp
    copy = cp.cuda.Stream(non_blocking=True)
    compute = cp.cuda.get_current_stream()
    pinned: list[Any] = [None, None]  # (rows, d) float32 page-locked host buffers
    device: list[Any] = [None, None]  # (rows, d) float32 device buffers
    copied: list[Any] = [None, None]  # event: the slot's last copy is done
    consumed: list[Any] = [None, None]  # event: the slot's last chunk's work is queued before it

    def stage(i: int, ids: np.ndarray, x: Any) -> tuple[np.ndarray, Any, Any]:
        if not isinstance(x, np.ndarray):  # on the device already
            return ids, x, None
        b, n = i % 2, x.shape[0]
        if copied[b] is not None:
            copied[b].synchronize()  # the copy of chunk i - 2 out of this pinned buffer is done
        if pinned[b] is None or pinned[b].shape[0] < n or pinned[b].shape[1] != x.shape[1]:
            pinned[b] = cupyx.empty_pinned((n, x.shape[1]), dtype=np.float32)
            device[b] = cp.empty((n, x.shape[1]), dtype=cp.float32)
        pinned[b][:n] = x
        if consumed[b] is not None:
            copy.wait_event(consumed[b])  # chunk i - 2's work no longer reads this device buffer
        out = device[b][:n]
        out.set(pinned[b][:n], stream=copy)
        copied[b] = copy.record()
        return ids, out, copied[b]

    pending = None
    for i, (ids, x) in enumerate(chunks):
        staged = stage(i, ids, x)  # queued before the previous chunk is handed out: they overlap
        if pending is not None:
            yield from _hand_out(compute, pending)
            consumed[(i - 1) % 2] = compute.record()
        pending = staged
    if pending is not None:
        yield from _hand_out(compute, pending)


def _hand_out(compute: Any, staged: tuple[np.ndarray, Any, Any]) -> Iterator[tuple[np.ndarray, Any]]:
    ids, x, ready = staged
    if ready is not None:
        compute.wait_event(ready)  # the device computes on the chunk once its copy is in
    yield ids, x
