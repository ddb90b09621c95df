"""--report FILE.html: one self-contained page with the tables, deploy strings and plots."""

from __future__ import annotations

import pytest

from gpupq.cli import app
from gpupq.htmlreport import external_references

from .helpers import cli_runner

pytest.importorskip("matplotlib")

SYN = ["--synthetic", "--n", "6000", "--d", "32", "--nlist", "32", "--m", "8,16", "-q"]


def test_recommend_report_is_one_page_with_the_answer_circled(tmp_path):
    page = tmp_path / "r.html"
    res = cli_runner().invoke(
        app, ["recommend", *SYN, "--target-recall", "0.8", "--n-total", "10M", "--report", str(page)]
    )
    assert res.exit_code == 0, res.stderr
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert external_references(text) == []  # opens with no network: nothing fetched
    assert text.count("<svg") == 1 and 'id="answer' in text  # the plot, the answer circled
    assert "Cheapest configurations that meet the target" in text and "index_factory" in text
    assert "memory at N=10,000,000" in text  # the plot at the deployed size
    assert "Evidence: every candidate evaluated" in text


def test_sweep_report_and_its_refusals(tmp_path):
    page = tmp_path / "s.html"
    res = cli_runner().invoke(app, ["sweep", *SYN, "--nprobe", "1,4", "--no-timing", "--report", str(page)])
    assert res.exit_code == 0, res.stderr
    text = page.read_text(encoding="utf-8")
    assert external_references(text) == [] and text.count("<svg") == 1
    assert "Operating points" in text and "IVF32,PQ16" in text
    bad = cli_runner().invoke(app, ["sweep", *SYN, "--report", str(tmp_path / "s.txt")])
    assert bad.exit_code == 2 and "give a file ending in .html" in bad.stderr
    same = cli_runner().invoke(app, ["sweep", *SYN, "--csv", str(page), "--report", str(page)])
    assert same.exit_code == 2 and "also --csv's output" in same.stderr


def test_external_references_are_found():
    assert external_references('<img src="https://x/y.png"><a href="#top">') == ["https://x/y.png"]
    assert external_references("<style>@import 'x.css'</style>") == ["@import"]
    assert external_references('<use xlink:href="#m1"/>') == []
