"""Recorded ``--json`` output of estimate, sweep and recommend on fixed seeds: what a refactor
must leave unchanged.

Each case is a command line; its JSON is stored in ``tests/data/golden/<case>.json`` with what
depends on the machine or the clock taken out (timings, queries/s, frontiers that use queries/s,
device and BLAS names). ``tests/test_golden.py`` reruns every case and compares the rest exactly.

A change that is meant to alter these outputs regenerates them and says which fields moved and
why in its commit::

    python -m tests.golden --update          # every case
    python -m tests.golden --update sweep_synthetic
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden"
MINILM = "tests/data/minilm_4k.npy"  # relative to ROOT: the JSON names the file as given

# --threads 2: results must not depend on the cores of the machine that checks them
_COMMON = ["--json", "-q", "--threads", "2"]
CASES: dict[str, list[str]] = {
    "estimate_synthetic": [
        "estimate", "--synthetic", "--n", "4000", "--d", "32", "--m", "8", "--nlist", "32", "--nprobe", "4",
        "--rerank", "40", "--rerank-store", "sq8", "--queries", "50", "--seed", "3", "--min-time", "0",
        "--n-total", "1M",
    ],
    "estimate_minilm": [
        "estimate", "--npy", MINILM, "--metric", "cosine", "--m", "48", "--nlist", "32", "--nprobe", "4",
        "--rerank", "50", "--rerank-store", "fp16", "--queries", "50", "--min-time", "0",
    ],
    "sweep_synthetic": [
        "sweep", "--synthetic", "--n", "4000", "--d", "32", "--m", "4,8", "--nlist", "16,32", "--nprobe", "1,4,16",
        "--rerank", "0,40", "--rerank-store", "fp16,sq8", "--no-timing", "--queries", "50", "--n-total", "10M",
    ],
    "sweep_minilm": [
        "sweep", "--npy", MINILM, "--metric", "cosine", "--m", "24,48", "--nlist", "32", "--no-timing",
        "--queries", "50",
    ],
    "recommend_synthetic": [
        "recommend", "--synthetic", "--n", "4000", "--d", "32", "--target-recall", "0.8", "--no-rerank",
        "--m", "4,8,16", "--nlist", "16,32", "--queries", "100", "--min-time", "0",
    ],
    "recommend_minilm": [
        "recommend", "--npy", MINILM, "--metric", "cosine", "--target-recall", "0.9", "--rerank", "50",
        "--rerank-store", "sq8", "--m", "16,32", "--nlist", "32", "--queries", "100", "--min-time", "0",
        "--n-total", "5M",
    ],
}  # fmt: skip

#: keys whose values depend on the clock or the machine, dropped wherever they appear
VOLATILE = {
    "timings", "runs", "timed_runs", "wall_s", "ground_truth_s", "train_s", "add_s", "coarse_train_s", "pq_train_s",
    "queries_per_s", "device", "blas", "library_version", "gpupq_version",
    # faiss-cpu's figures for the answers: present only where it is installed, and its version's
    "faiss_cpu", "latency",
}  # fmt: skip
#: frontiers that use queries/s move with the clock
VOLATILE_FRONTIERS = {"qps", "all"}


def stable(obj: Any) -> Any:
    """``obj`` without :data:`VOLATILE` keys (and queries/s frontiers), recursively."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key in VOLATILE:
                continue
            if key == "pareto" and isinstance(value, dict):
                value = {k: v for k, v in value.items() if k not in VOLATILE_FRONTIERS}
            out[key] = stable(value)
        return out
    if isinstance(obj, list):
        return [stable(v) for v in obj]
    return obj


def run(case: str) -> dict[str, Any]:
    """The case's JSON output, run in-process from the repository root, stabilised."""
    import os

    from typer.testing import CliRunner

    from gpupq.cli import app

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        result = CliRunner().invoke(app, CASES[case] + _COMMON)
    finally:
        os.chdir(cwd)
    if result.exit_code != 0:
        raise RuntimeError(f"{case}: exit {result.exit_code}: {result.output[-2000:]}")
    return stable(json.loads(result.stdout))


def stored(case: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{case}.json").read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="rewrite the stored outputs")
    parser.add_argument("cases", nargs="*", help=f"cases (default all): {', '.join(CASES)}")
    args = parser.parse_args(argv)
    bad = 0
    for case in args.cases or list(CASES):
        got = run(case)
        path = GOLDEN / f"{case}.json"
        if args.update:
            path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
        elif got != stored(case):
            bad += 1
            print(f"{case}: differs from {path.relative_to(ROOT)}")
        else:
            print(f"{case}: unchanged")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
