import json
import math

import numpy as np
import pytest

from gpupq.backends import cupy_status
from gpupq.cli import app
from gpupq.memory import memory_bill, scaled_nlist

from .helpers import cli_runner, clustered
from .helpers import run_cli as run

FAST = ["--m", "4", "--nlist", "16", "--nprobe", "4", "--nbits", "6", "--queries", "40", "-q"]


def test_estimate_synthetic_json():
    res = run("estimate", "--synthetic", "--n", "3000", "--d", "16", *FAST, "--rerank", "30", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)  # stdout is exactly one JSON object
    assert out["dataset"] == {
        "source": "synthetic",
        "n": 3000,
        "d": 16,
        "dtype": "float32",
        "n_base": 2960,
        "n_queries": 40,
        "queries_source": "held out",
        "ground_truth": "computed (exact search)",
        "metric": "l2",
    }
    assert out["params"]["m"] == 4 and out["params"]["nbits"] == 6 and out["params"]["rerank"] == 30
    r = out["results"][0]
    assert r["backend"] == "numpy"
    assert set(r) >= {"recall", "recall_rerank", "memory", "scanned", "timings", "device", "train_points"}
    assert 0 <= r["recall"]["ci95_low"] <= r["recall"]["mean"] <= r["recall"]["ci95_high"] <= 1
    assert r["memory"]["codes"] == 2960 * 3
    assert "intersection" in out["recall_definition"]


def test_estimate_table_output():
    res = run("estimate", "--synthetic", "--n", "3000", "--d", "16", *FAST)
    assert res.exit_code == 0, res.stderr
    for text in (
        "Recall@10",
        "+ re-rank of top 100 (fp32 vectors)",
        "Memory",
        "PQ codes",
        "index in memory",
        "vectors scanned",
        "search",
        "intersection",
    ):
        assert text in res.stdout, text


def test_estimate_npy_and_progress(tmp_path):
    path = tmp_path / "emb.npy"
    np.save(path, clustered(3000, 16).astype(np.float16))
    res = run("estimate", "--npy", str(path), "--m", "4", "--nlist", "16", "--nbits", "6", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["dataset"]["source"] == str(path) and out["dataset"]["dtype"] == "float16"
    assert "ground truth" in res.stderr  # progress goes to stderr, never stdout


def test_cosine_and_ip(tmp_path):
    for metric in ("ip", "cosine"):
        res = run("estimate", "--synthetic", "--n", "3000", "--d", "16", *FAST, "--metric", metric, "--json")
        assert res.exit_code == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["dataset"]["metric"] == metric
        assert out["results"][0]["memory"]["precomputed_table"] == 0  # FAISS uses none for IP


def test_info():
    res = run("info", "--json")
    assert res.exit_code == 0
    info = json.loads(res.stdout)
    assert [b["backend"] for b in info["backends"]] == ["numpy", "cupy"]
    assert info["backends"][0]["usable"] is True
    assert info["libraries"]["numpy"] == np.__version__
    res = run("info")
    assert res.exit_code == 0 and "Backends" in res.stdout


def _bad_npy(tmp_path, arr, **kw):
    path = tmp_path / "bad.npy"
    np.save(path, arr, **kw)
    return str(path)


def _with_nan(tmp_path):
    x = clustered(2000, 16)
    x[[1, 2, 3], 0] = np.nan
    return _bad_npy(tmp_path, x)


def _with_zeros(tmp_path):
    x = clustered(2000, 16)
    x[5] = 0
    return _bad_npy(tmp_path, x)


def _text_file(tmp_path):
    path = tmp_path / "x.npy"
    path.write_text("id,vector\n1,0.5\n")
    return str(path)


BAD = [
    (lambda p: ["--npy", str(p / "nope.npy")], "no such file"),
    (lambda p: ["--npy", str(p)], "is a directory"),
    (lambda p: ["--npy", _text_file(p)], "not an .npy file"),
    (lambda p: ["--npy", _bad_npy(p, np.array([1, "a", None], dtype=object), allow_pickle=True)], "pickled"),
    (lambda p: ["--npy", _bad_npy(p, np.zeros(100, np.float32))], "expected 2-D"),
    (lambda p: ["--npy", _bad_npy(p, np.zeros((10, 10, 10), np.float32))], "expected 2-D"),
    (lambda p: ["--npy", _with_nan(p)], "3 of 2000 rows contain NaN or Inf"),
    (lambda p: ["--npy", _with_zeros(p), "--metric", "cosine", "--m", "4"], "1 rows are all zeros"),
    (lambda p: ["--synthetic", "--d", "30", "--m", "4"], "valid m: 1, 2, 3, 5, 6, 10, 15, 30"),
    (lambda p: ["--synthetic", "--n", "500", "--nlist", "1000", "--nprobe", "8"], "fewer than --nlist 1000"),
    (lambda p: ["--synthetic", "--n", "200", "--nlist", "8", "--queries", "10"], "2^nbits=256"),
    (
        lambda p: ["--synthetic", "--n", "300", "-k", "400", "--rerank", "0", "--nlist", "4", "--nprobe", "2"],
        "-k 400 is larger",
    ),
    (lambda p: ["--synthetic", "--n", "300", "--queries", "300"], "leaves no base"),
    (lambda p: ["--synthetic", "--nlist", "16", "--nprobe", "32"], "--nprobe 32 must be between 1 and --nlist 16"),
    (lambda p: ["--synthetic", "--nbits", "12"], "--nbits must be between 4 and 8 (got 12)"),
    (lambda p: ["--synthetic", "--nbits", "3"], "--nbits must be between 4 and 8 (got 3)"),
    (lambda p: ["--synthetic", "--rerank", "5"], "--rerank 5 re-ranks fewer candidates than the 10 neighbours"),
    (lambda p: [], "give exactly one of --data PATH, --npy PATH or --synthetic"),
    (lambda p: ["--synthetic", "--npy", "x.npy"], "give exactly one of"),
]


@pytest.mark.parametrize("make,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_one_line_exit_2(tmp_path, make, message):
    res = run("estimate", *make(tmp_path), "-q")
    assert res.exit_code == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert "Traceback" not in res.stderr and res.stdout == ""


@pytest.mark.skipif(cupy_status().usable, reason="a GPU is present")
def test_cupy_backend_without_gpu():
    res = run("estimate", "--synthetic", "--backend", "cupy", "-q")
    assert res.exit_code == 2
    assert res.stderr.startswith("error: --backend cupy is not usable here: ")
    assert len(res.stderr.strip().splitlines()) == 1


def test_rerank_store_shrinks_the_bill():
    sizes = {}
    for store in ("fp32", "fp16", "sq8"):
        res = run("estimate", "--synthetic", "--n", "3000", "--d", "16", *FAST, "--rerank-store", store, "--json")
        assert res.exit_code == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["params"]["rerank_store"] == store
        sizes[store] = out["results"][0]["memory"]["rerank_store"]
    assert sizes == {"fp32": 2960 * 16 * 4, "fp16": 2960 * 16 * 2, "sq8": 2960 * 16 + 2 * 16 * 4}


# ---------------------------------------------------------------------------- the CLI as a user meets it


def test_version():
    import gpupq

    res = run("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"gpupq {gpupq.__version__}"


def test_help_shows_flags_as_flags_and_format_choices():
    res = run("estimate", "--help")
    assert res.exit_code == 0
    assert "<bool>" not in res.stdout  # --synthetic, --json, --opq, -q take no value
    assert "-k, --k" in res.stdout
    assert "npy|npz|fvecs" in res.stdout  # --format lists its choices
    assert "--threads" in res.stdout and "--min-time" in res.stdout


def test_long_k_option():
    res = run("estimate", "--synthetic", "--n", "3000", "--d", "16", *FAST, "--k", "5", "--rerank", "0", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["params"]["k"] == 5


@pytest.mark.skipif(cupy_status().usable, reason="a GPU is present: nothing is skipped")
def test_backend_all_says_what_it_skipped():
    res = run("estimate", "--synthetic", "--n", "3000", "--d", "16", *FAST, "--backend", "all", "--json")
    assert res.exit_code == 0, res.stderr
    assert "skipped backend cupy: " in res.stderr
    out = json.loads(res.stdout)
    assert [r["backend"] for r in out["results"]] == ["numpy"]
    assert set(out["skipped_backends"]) == {"cupy"}


def test_warnings_in_the_table_too():
    """Warnings reach a user reading the table, not only stderr."""
    res = run("estimate", "--synthetic", "--n", "3000", "--d", "16", "--m", "4", "--nlist", "16", "-q")
    assert res.exit_code == 0, res.stderr
    assert "39 per centroid" in res.stderr  # PQ training: 2,900 points for 256 centroids
    assert "Warnings" in res.stdout and "39 per centroid" in res.stdout


def test_user_text_is_printed_literally(tmp_path):
    """A path with rich markup or emoji codes in it is shown as it is, in errors and tables."""
    odd = tmp_path / ":x: [bold]:train:"
    odd.mkdir()
    path = odd / "v.npy"
    res = run("estimate", "--npy", str(path), "-q")
    assert res.exit_code == 2 and f"{path}: no such file" in res.stderr
    np.save(path, clustered(3000, 16))
    res = run("estimate", "--npy", str(path), *FAST)
    assert res.exit_code == 0, res.stderr
    assert str(path) in res.stdout.replace("\n", "")
    assert "❌" not in res.stdout + res.stderr and "🚆" not in res.stdout + res.stderr


def test_inflate_limit_option(tmp_path):
    """--inflate-limit bounds what a compressed .npz may inflate to, and says how to raise it."""
    path = tmp_path / "x.npz"
    np.savez_compressed(path, emb=clustered(3000, 16))  # 192 kB of float32 inflated
    res = run("estimate", "--data", str(path), *FAST, "--inflate-limit", "100kB")
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "--inflate-limit" in res.stderr
    res = run("estimate", "--data", str(path), *FAST, "--inflate-limit", "1MB", "--json")
    assert res.exit_code == 0, res.stderr


# ---------------------------------------------------------------------------- sweep, recommend and --n-total


def test_sweep_cli_writes_csv_and_json(tmp_path):
    out_csv = tmp_path / "points.csv"
    args = ["sweep", "--synthetic", "--n", "4000", "--d", "16", "--nlist", "16", "--m", "4,8", "--nprobe", "1-8"]
    res = cli_runner().invoke(app, [*args, "--rerank", "0,30", "--csv", str(out_csv), "--json", "-q"])
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["command"] == "sweep" and len(data["points"]) == 2 * 4 * 2
    assert all(p["queries_per_s"] > 0 for p in data["points"])
    assert len(out_csv.read_text().splitlines()) == 1 + len(data["points"])
    assert not list(tmp_path.glob(".*tmp"))


def test_recommend_cli_prints_the_answer_and_deploy_strings():
    args = ["recommend", "--synthetic", "--n", "6000", "--d", "32", "--target-recall", "0.8", "--nlist", "32"]
    extra = ["--runners-up-within", "inf"]  # every runner-up, however dear
    res = cli_runner().invoke(app, [*args, "--m", "8,16", "--n-total", "10M", "--scale-curve", "-q", *extra])
    assert res.exit_code == 0, res.stderr
    for text in ("best", "#2", "index_factory", "cuVS", "Evidence", "at N=10M", "Recall as the collection grows"):
        assert text in res.stdout, text
    assert "space: " in res.stdout and "candidates on faiss-cpu" in res.stdout


def test_recommend_holds_out_enough_queries_to_decide_by_default():
    """1,000 queries on a large set, N/20 on a small one (at least 100), --queries as given."""
    from gpupq.recommend import default_queries

    assert default_queries(60_000) == 1000 and default_queries(6_000) == 300 and default_queries(1_000) == 100
    args = ["recommend", "--synthetic", "--n", "6000", "--d", "16", "--target-recall", "0.5", "--no-rerank"]
    res = cli_runner().invoke(app, [*args, "--m", "4", "--nbits", "8", "--nlist", "16", "--json", "-q"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["dataset"]["n_queries"] == 300


@pytest.mark.parametrize(
    "args,message",
    [
        (["sweep", "--synthetic", "--nprobe", "8-2"], "--nprobe '8-2'"),
        (["sweep", "--synthetic", "--m", "7"], "--m 7"),
        (["sweep", "--synthetic", "--rerank-store", "fp8"], "--rerank-store"),
        (["sweep", "--synthetic", "--backend", "all"], "one: auto, numpy or cupy"),
        (["sweep", "--synthetic", "--n-total", "lots"], "--n-total"),
        (["sweep", "--synthetic", "--csv", "/no/such/dir/x.csv"], "does not exist"),
        (["recommend", "--synthetic", "--target-recall", "1.5"], "--target-recall"),
        (["recommend", "--synthetic", "--target-recall", "0.9", "--runners-up-within", "0.5"], "--runners-up-within"),
        (["recommend", "--synthetic", "--target-recall", "0.9", "--memory-budget", "lots"], "memory"),
        # issue 15's hostile cases: each refused before any work, in one line that names the option
        (["recommend", "--synthetic", "--target-recall", "0.9", "--min-qps", "nan"], "--min-qps must be a finite"),
        (["recommend", "--synthetic", "--target-recall", "0.9", "--min-qps", "inf"], "--min-qps must be a finite"),
        (["recommend", "--synthetic", "--target-recall", "nan"], "--target-recall must be a finite"),
        (["recommend", "--synthetic", "--target-recall", "0.9", "--engine", "milvus"], "--engine 'milvus'"),
        (["recommend", "--synthetic", "--target-recall", "0.9", "--time-budget", "0"], "--time-budget must be"),
        (["sweep", "--synthetic", "--n-total", "1"], "--n-total 1 is smaller than the 9,900 vectors measured"),
        (["sweep", "--synthetic", "--n-total", "1e30"], "--n-total '1e30': must be between 1 and 10T"),
        (["sweep", "--synthetic", "--n-total", "inf"], "--n-total 'inf': give a count"),
        (["sweep", "--synthetic", "--n-total", "nan"], "--n-total 'nan': give a count"),
        (["sweep", "--synthetic", "--n-total", "12.5"], "--n-total '12.5': give a whole number"),
        (["sweep", "--synthetic", "--seed", str(2**63)], "--seed must be between 0 and 4294967295"),
        (["sweep", "--synthetic", "-k", "5000", "--rerank", "0,100"], "--rerank 100 re-ranks fewer candidates than"),
        (
            ["recommend", "--synthetic", "--target-recall", "0.9", "--no-rerank", "--rerank", "50"],
            "--no-rerank contradicts",
        ),
        (["sweep", "--synthetic", "--m", ""], "--m ''"),
        (["sweep", "--synthetic", "--nbits", ""], "--nbits ''"),
        (["sweep", "--synthetic", "--csv", ""], "--csv '': give a file name"),
        (["sweep", "--synthetic", "--csv", "-"], "--csv '-': give a file name"),
        (["sweep", "--synthetic", "--plot", "f.jpg"], "give a file ending in .png, .pdf, .svg"),
        (["sweep", "--synthetic", "--csv", "x.csv", "--plot", "x.csv"], "also --csv's output"),
    ],
)
def test_bad_sweep_and_recommend_input_is_one_line(args, message):
    res = cli_runner().invoke(app, [*args, "-q"])
    assert res.exit_code == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], res.stderr


def test_estimate_n_total_and_scale_curve_through_the_cli():
    args = ["estimate", "--synthetic", "--n", "8000", "--d", "32", "--m", "8", "--nlist", "64", "--rerank", "40"]
    res = cli_runner().invoke(app, [*args, "--rerank-store", "sq8", "--n-total", "2B", "--scale-curve", "--json", "-q"])
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    dep = data["deployment"]
    nlist = scaled_nlist(64, data["dataset"]["n_base"], 2 * 10**9)
    bill = memory_bill(2 * 10**9, 32, nlist, 8, 8, "l2", 2 * 10**9 * 32 + 2 * 32 * 4)
    assert dep["n_total"] == 2 * 10**9 and dep["nlist"] == nlist
    assert dep["memory_bytes"] == bill.with_rerank
    curve = data["scale_curve"]
    nb = data["dataset"]["n_base"]
    assert [p["n"] for p in curve["points"]] == [nb // 8, nb // 4, nb // 2, nb]
    assert "extrapolated" in curve["caveat"]
    # the trend is of what the configuration returns, re-ranked here, not of the raw PQ ranking
    trend = curve["trend"]
    assert [t["recall"] for t in trend["points"]] == [p["recall"]["mean"] for p in curve["points"]]
    assert all(p["recall"]["mean"] > p["recall_raw"]["mean"] for p in curve["points"])
    # either outcome, checked for what it is: a prediction on the fitted line, or none for a reason
    if "prediction" in curve:
        want = trend["a"] + trend["b"] * math.log2(2 * 10**9)
        assert curve["prediction"]["recall"] == pytest.approx(min(1.0, max(0.0, want)), abs=1e-12)
        assert curve["prediction"]["band95_low"] <= curve["prediction"]["recall"] <= curve["prediction"]["band95_high"]
        assert trend["chi2_per_dof"] <= 4
    else:
        assert trend["chi2_per_dof"] > 4 and any("no extrapolation" in n for n in curve["notes"])
