"""The module entry point and the benchmark script still run (no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "gpupq", "info", "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["backends"][0]["backend"] == "numpy"


def test_benchmark_script_runs(tmp_path):
    pytest.importorskip("faiss")
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_backends.py"),
        "--sizes",
        "4000x16:4,3000x32",
        "--nlist",
        "16",
        "--nprobe",
        "4",
        "--queries",
        "50",
        "--repeat",
        "2",
        "--pause",
        "0",
        "--json",
        str(out),
    ]
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(out.read_text())
    assert [s["size"] for s in result["sizes"]] == [{"n": 4000, "d": 16, "m": 4}, {"n": 3000, "d": 32, "m": 4}]
    for size in result["sizes"]:
        assert {"gpupq-numpy", "faiss-cpu"} <= set(size["median"])
        for name, engine in size["median"].items():
            assert set(engine) >= {"ground_truth", "train", "add", "search", "recall"}
            assert 0 < engine["recall"] <= 1
            assert len(size["runs"][name]) == 2
            for ph in ("ground_truth", "train", "add", "search"):
                lo, hi = engine[f"{ph}_spread"]
                assert 0 < lo <= engine[ph] <= hi
        rates = size["rates"]["gpupq-numpy"]
        assert rates["gemm_tflops"] > 0 and rates["bandwidth_gbps"] > 0
        assert 0 < rates["ground_truth_of_gemm"] and 0 < rates["search_of_bandwidth"]


def test_kernel_benchmark_runs():
    """Every row of benchmarks/bench_kernels.py is printed (tiny sizes; no timing asserted)."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_kernels.py"), "--dims", "8,40", "--points", "512"]
    cmd += ["--repeat", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "nearest of 256 targets" in out and "\n   8 " in out and "\n  40 " in out
    assert "array form:" in out and "centroid sums" in out


def test_dask_benchmark_runs_and_agrees():
    """benchmarks/bench_dask.py at a tiny size: every path's row is printed (the script itself
    asserts that their neighbours agree; no timing asserted)."""
    pytest.importorskip("distributed")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_dask.py"), "--sizes", "6000x16:3", "--queries", "50"]
    cmd += ["--workers", "1", "--repeat", "1", "--memory", "40000x16:3", "--memory-workers", "2"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "| 6,000 x 16 | 3 | one pass |" in out and "| shards here |" in out and "| dask 1 (start" in out
    rows = [r for r in out.splitlines() if r.startswith("| 40,000 x 16 |")]  # a row a worker, 3 shards
    assert len(rows) == 2 and sum(int(r.split("|")[2]) for r in rows) == 3
