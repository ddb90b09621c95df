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
        "--n",
        "4000",
        "--d",
        "16",
        "--m",
        "4",
        "--nlist",
        "16",
        "--nprobe",
        "4",
        "--queries",
        "50",
        "--repeat",
        "1",
        "--json",
        str(out),
    ]
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(out.read_text())
    assert {"gpupq-numpy", "faiss-cpu"} <= set(result["median"])
    for engine in result["median"].values():
        assert set(engine) >= {"ground_truth", "train", "add", "search", "recall"}
        assert 0 < engine["recall"] <= 1
