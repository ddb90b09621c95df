"""Peak memory of ``gpupq estimate`` on a file far larger than its chunks: is it bounded?

    python benchmarks/bench_memory.py                         # 10,000,000 x 128 (5 GB)
    python benchmarks/bench_memory.py --n 1000000 --file /tmp/x.npy --json mem.json

Writes a clustered float32 ``.npy`` of n x d in chunks (once; an existing file of that shape
is reused), then runs ``gpupq estimate --npy FILE`` in a child process and samples its memory
from ``/proc/PID/status`` every 50 ms:

- ``RssAnon``: memory the process allocated itself (arrays, the index, chunks): what must stay
  bounded by the chunk size and the index, whatever n is;
- ``RssFile``: pages of the memory-mapped input the process has touched, which the kernel
  keeps as page cache and can drop at any time; it grows with the file and is not gpupq's.

It prints both peaks, the wall time, the estimate's own phase timings, and the size of what
an index of these settings holds (codes + ids + the list scan's per-vector term), so the
anonymous peak can be read against it. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np


def write_clustered(path: Path, n: int, d: int, seed: int = 0, chunk: int = 1 << 18) -> None:
    """A clustered (n, d) float32 .npy, written chunk by chunk through a memory map."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(1000, d)).astype(np.float32)
    tmp = path.with_suffix(".partial.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        out[s:e] = centres[rng.integers(0, len(centres), e - s)] + rng.standard_normal((e - s, d), dtype=np.float32)
    out.flush()
    del out
    tmp.rename(path)


def status_kib(pid: int | str) -> dict[str, int]:
    """RssAnon, RssFile and VmRSS of process ``pid`` ("self" for this one) in KiB, from /proc
    (empty where there is none)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmRSS"):
                out[key] = int(rest.split()[0])
    except (OSError, ValueError):
        pass
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000_000)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--file", type=Path, default=Path("/tmp/gpupq_bench_memory.npy"))
    p.add_argument("--nlist", type=int, default=4096)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--rerank", type=int, default=100)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    args = p.parse_args(argv)

    shape_ok = False
    if args.file.exists():
        head = np.load(args.file, mmap_mode="r", allow_pickle=False)
        shape_ok = head.shape == (args.n, args.d) and head.dtype == np.float32
        del head
    if not shape_ok:
        print(f"writing {args.n:,} x {args.d} float32 to {args.file} ...", file=sys.stderr)
        t0 = time.perf_counter()
        write_clustered(args.file, args.n, args.d)
        print(f"  {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    cmd = [
        sys.executable, "-m", "gpupq", "estimate", "--npy", str(args.file), "--nlist", str(args.nlist),
        "--m", str(args.m), "--nprobe", str(args.nprobe), "--queries", str(args.queries),
        "--rerank", str(args.rerank), "--backend", "numpy", "--min-time", "0", "--json", "--quiet",
    ]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[str, int] = {}

    def sample() -> None:
        while proc.poll() is None:
            for key, v in status_kib(proc.pid).items():
                peaks[key] = max(peaks.get(key, 0), v)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.join()
    if proc.returncode != 0:
        print(err, file=sys.stderr)
        return proc.returncode
    result = json.loads(out)
    n_base = args.n - args.queries
    index_bytes = n_base * (args.m + 8 + 4)  # codes (nbits 8) + ids + the scan's per-vector term
    figures = {
        "peak_rss_anon_mib": peaks.get("RssAnon", 0) / 1024,
        "peak_rss_file_mib": peaks.get("RssFile", 0) / 1024,
        "peak_vm_rss_mib": peaks.get("VmRSS", 0) / 1024,
        "wall_s": wall,
        "file_gib": args.file.stat().st_size / 2**30,
        "index_in_memory_mib": index_bytes / 2**20,
    }
    backend = result["results"][0]
    summary = {"figures": figures, "timings": backend.get("timings"), "recall": backend.get("recall")}
    print(json.dumps(summary, indent=2))
    if args.json:
        meta = {
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.node()} {platform.machine()}",
            "command": " ".join(cmd),
            "args": {k: str(v) for k, v in vars(args).items()},
        }
        args.json.write_text(json.dumps({"meta": meta, "figures": figures, "estimate": result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
