"""What recommend advises when nothing meets every constraint: one consistent account of the
findings, each tip naming the constraint that binds. ``out``: a :class:`gpupq.recommend.Recommendation`,
``target`` its Target, ``budget_pick`` the cheapest Finding over the memory budget that meets it."""

from __future__ import annotations

from typing import Any

from .units import human_bytes


def advice(out: Any, target: Any, budget_pick: Any) -> list[str]:
    """What to change when nothing meets every constraint: one consistent account, from the
    findings (each tip names the constraint that binds, never one that was not given)."""
    if out.answers:
        return []
    tips = []
    budget = target.memory_budget is not None
    if budget_pick is not None:
        tips.append(
            f"nothing within the memory budget meets the target; the cheapest that does is "
            f"{budget_pick.candidate.label} at {human_bytes(budget_pick.candidate.memory_bytes)}: relax "
            "--memory-budget to at least that"
        )
    undecided = [f for f in out.findings if f.verdict == "undecided"]
    slow = [f for f in out.findings if f.verdict == "slow"]
    if undecided:
        f = undecided[0]
        assert f.point is not None
        tips.append(
            f"undecided: {f.candidate.label} at {f.point.setting.label} has recall {f.point.recall.mean:.3f} "
            f"(95% interval {f.point.recall.ci95_low:.3f}–{f.point.recall.ci95_high:.3f}), which straddles "
            f"{target.recall}; "
            + (
                f"about {f.more_queries} more queries (--queries) would decide it"
                if f.more_queries is not None
                else "its mean is at the target, so more queries alone may not decide it"
            )
        )
    if slow:
        fastest = max(slow, key=lambda f: (f.point.queries_per_s or 0) if f.point else 0)
        assert fastest.point is not None
        dearer = budget and out.over_budget > 0  # a configuration over the budget might be faster
        tips.append(
            f"configurations meet the recall but none reaches --min-qps {target.min_qps:g}: the fastest, "
            f"{fastest.candidate.label} at {fastest.point.setting.label}, does "
            f"{fastest.point.queries_per_s:,.0f} queries/s; relax --min-qps"
            + (" or --memory-budget (larger configurations were not tried)" if dearer else "")
        )
    if not out.findings:
        tips.append("no candidate fits the memory budget; relax --memory-budget")
    elif budget_pick is None and not undecided and not slow:
        # a draft's best understates its build's: the faithful builds' first
        seen = [f.best for f in out.findings if f.best is not None and not f.draft] or [
            f.best for f in out.findings if f.best is not None
        ]
        closest = max(seen, key=lambda p: p.recall.mean)
        tips.append(
            f"nothing evaluated meets recall {target.recall}: the closest is {closest.build.label} at "
            f"{closest.setting.label}, recall {closest.recall.mean:.3f} "
            f"({closest.recall.ci95_low:.3f}–{closest.recall.ci95_high:.3f}); "
            + ("allow re-ranking (drop --no-rerank), " if not target.rerank else "")
            + "try larger codes (--m, --nbits)"
            + (", a larger --memory-budget" if budget and out.over_budget else "")
            + " or a lower --target-recall"
        )
    return tips
