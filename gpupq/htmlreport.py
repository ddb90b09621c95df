"""``--report FILE.html``: one self-contained page to keep in a design document.

The page holds what the terminal shows (the answer, the evidence table, the deploy strings, the
notes), rendered by the same :mod:`gpupq.report` functions at a width of its own, and the plots
as inline SVG: at the deployed size when ``--n-total`` is given, the recommendation's answer
circled. Nothing is fetched when it is opened: no script, no stylesheet, no font, no image from
anywhere else.
"""

from __future__ import annotations

import html
import io
import re
from datetime import datetime, timezone
from typing import Any

from rich.console import Console

from . import __version__
from .engine import PointResult
from .grid import Grid
from .plot import render
from .recommend import Recommendation
from .recommend_report import render_recommendation
from .report import render_sweep
from .sweep import SweepResult, deployment_table

#: the width the tables are laid out at on the page (it scrolls sideways beyond the window)
PAGE_WIDTH = 120

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #111; }
pre { font-family: Menlo, "DejaVu Sans Mono", Consolas, monospace; font-size: 12px; line-height: 1.35;
      overflow-x: auto; background: #fafafa; border: 1px solid #ddd; padding: 1em; }
figure { margin: 1.5em 0; } figure svg { width: 100%; height: auto; }
figcaption, .meta { color: #555; font-size: 13px; }
"""


def _terminal_html(renderable: Any) -> str:
    """The renderable as the terminal shows it, as a <pre> block with inline styles."""
    console = Console(record=True, width=PAGE_WIDTH, file=io.StringIO(), force_terminal=False, emoji=False)
    console.print(renderable)
    exported = console.export_html(inline_styles=True, code_format="<pre><code>{code}</code></pre>")
    return exported


def _inline_svg(svg: bytes) -> str:
    """An SVG file's <svg> element, for inlining (its XML declaration and doctype dropped)."""
    text = svg.decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else ""


def page(title: str, body: Any, figures: list[tuple[str, bytes]]) -> str:
    """A complete HTML page: ``body`` (a rich renderable) as text, then each (caption, svg)."""
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">gpupq {html.escape(__version__)}, {made}</p>',
        _terminal_html(body),
    ]
    for caption, svg in figures:
        parts.append(f"<figure>{_inline_svg(svg)}<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def sweep_page(result: SweepResult) -> str:
    """A sweep's page: every point's table and the frontiers' plot."""
    n_total = result.deployment["n_total"] if result.deployment else None
    caption = "recall against memory" + (f" at N={n_total:,}" if n_total else "") + " and against queries/s"
    figures = [(caption, render(result, "svg"))] if result.points else []
    return page(f"gpupq sweep: {result.dataset.get('source', '')}", render_sweep(result, width=PAGE_WIDTH), figures)


def evidence(rec: Recommendation) -> SweepResult:
    """Every point the recommendation measured, as a sweep (for its plot), billed as the
    recommendation bills its candidates: on its engine, at --n-total when given (else at the
    sample's size), without FAISS's precomputed table."""
    points = list(rec.evaluated)
    grid = Grid(nlist=sorted({p.build.nlist for p in points}), m=sorted({p.build.m for p in points}))
    result = SweepResult(
        dataset=rec.dataset, grid=grid, k=rec.k, backend=rec.backend, device=rec.device, points=points, builds=[]
    )
    result.mark_frontiers()
    if points:
        bills = {(f.candidate.build, f.candidate.store): f.candidate.memory_bytes for f in rec.findings}

        def memory_of(p: PointResult) -> int | None:
            return bills.get((p.build, p.setting.store if p.setting.rerank else ""))

        result.deployment = deployment_table(result, rec.n_total or rec.dataset["n_base"], memory_of)
    return result


def recommend_page(rec: Recommendation) -> str:
    """A recommendation's page: the answer, the evidence, and every point measured, the answer
    circled."""
    figures = []
    if rec.evaluated:
        answer = rec.answers[0].point if rec.answers else None
        where = f" at N={rec.n_total:,}" if rec.n_total else ""
        caption = f"every point evaluated: recall against memory{where} and against queries/s" + (
            "; circled: the answer" if answer is not None else ""
        )
        figures.append((caption, render(evidence(rec), "svg", mark=answer, command="recommend")))
    title = f"gpupq recommend: {rec.dataset.get('source', '')}, recall@{rec.k} ≥ {rec.target.recall}"
    return page(title, render_recommendation(rec, width=PAGE_WIDTH), figures)


def external_references(text: str) -> list[str]:
    """Every reference in a page that would fetch something when it is opened (for tests: none)."""
    found = re.findall(r"""(?:src|href)\s*=\s*["']([^"'#][^"']*)["']""", text, flags=re.IGNORECASE)
    found += re.findall(r"url\(\s*['\"]?(?!#)([^'\")]+)", text)
    found += re.findall(r"@import", text)
    return found
