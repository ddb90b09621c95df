"""Recall and its interval on hand-made cases, where the right answer is known by hand.

Both sides of every FAISS comparison are scored with these functions, so they are checked here
against numbers worked out without them: ties, missing (-1) ids, a single query, stored lists
out of order, and the tolerance at its edge.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpupq.metrics import TIE_EPS, GroundTruth, exact_scores, recall_at_k


def test_intersection_recall_by_hand():
    """Row 0 finds 2 of its 3 neighbours, row 1 all 3, row 2 none (-1 never matches, even a -1 in
    the truth); the interval is mean ± 1.96·sd/√3 with the sample sd."""
    found = np.array([[5, 9, 7], [1, 2, 3], [-1, -1, -1]])
    exact = np.array([[5, 7, 8], [3, 2, 1], [-1, 4, 6]])
    r = recall_at_k(found, exact, 3)
    per_query = np.array([2 / 3, 1.0, 0.0])
    half = 1.96 * per_query.std(ddof=1) / np.sqrt(3)
    assert r.mean == pytest.approx(per_query.mean())
    assert r.ci95_low == pytest.approx(max(0.0, per_query.mean() - half))
    assert r.ci95_high == pytest.approx(min(1.0, per_query.mean() + half))
    assert r.queries == 3


def test_intersection_uses_only_the_top_k_columns():
    found = np.array([[1, 2, 3, 4]])
    exact = np.array([[4, 3, 9, 9]])
    assert recall_at_k(found, exact, 2).mean == 0.0  # top-2 {1, 2} vs {4, 3}
    assert recall_at_k(found, exact, 4).mean == 0.5


def test_one_query_says_nothing_about_the_mean():
    """One query has no spread to measure: a normal interval would have zero width (and a
    recommendation would call 0.5±0 decided); the interval is the whole of [0, 1]."""
    r = recall_at_k(np.array([[1, 2]]), np.array([[2, 7]]), 2)
    assert (r.mean, r.ci95_low, r.ci95_high) == (0.5, 0.0, 1.0)


def test_interval_is_students_t_and_clipped_to_0_1():
    found = np.array([[1], [1], [1], [2], [1], [1], [1], [2]])
    exact = np.ones((8, 1), dtype=np.int64)
    r = recall_at_k(found, exact, 1)
    sd = np.std([1, 1, 1, 0] * 2, ddof=1)
    assert r.mean == 0.75 and r.ci95_high == 1.0  # 0.75 + 2.365·0.46/√8 > 1
    assert r.ci95_low == pytest.approx(0.75 - 2.365 * sd / np.sqrt(8))  # t(0.975, 7 df), not 1.96
    assert r.sd == pytest.approx(sd)


@pytest.mark.parametrize(("queries", "low"), [(1, 0.0), (10, 0.7), (30, 0.9), (100, 0.97), (1000, 0.997)])
def test_agreeing_queries_leave_the_rule_of_three(queries, low):
    """Every query perfect: zero spread, yet n queries cannot rule out a kind of query making up
    3/n of them that scores 0. Ten perfect queries must not read "1.000±.000, meets 0.9"."""
    r = recall_at_k(np.zeros((queries, 1), dtype=np.int64), np.zeros((queries, 1), dtype=np.int64), 1)
    assert r.mean == 1.0 and r.ci95_high == 1.0
    assert r.ci95_low == pytest.approx(low)


def test_the_interval_is_the_wider_rule():
    """With spread, the t interval wins where it is wider than the rule of three."""
    rng = np.random.default_rng(0)
    hits = rng.random((400, 10)) < 0.6  # per-query recall about 0.6 with sd about 0.15
    found = np.where(hits, np.arange(10), -1)
    exact = np.tile(np.arange(10), (400, 1))
    r = recall_at_k(found, exact, 10)
    per_query = hits.mean(axis=1)
    half = 1.966 * per_query.std(ddof=1) / np.sqrt(400)
    assert half > 3 / 400 * r.mean
    assert r.ci95_low == pytest.approx(r.mean - half, abs=2e-4)
    assert r.ci95_high == pytest.approx(r.mean + half, abs=2e-4)


# ---------------------------------------------------------------------------- by exact distance

# Five base vectors on a line: ids 0 and 1 are the same point (a duplicate), 2 and 3 are each
# at distance 2 and 3 from the query at the origin, 4 at distance 1 on the other side.
BASE = np.array([[1.0, 0], [1.0, 0], [2.0, 0], [3.0, 0], [-1.0, 0]], dtype=np.float32)
QUERY = np.zeros((1, 2), dtype=np.float32)


def rows(ids: np.ndarray) -> np.ndarray:
    return BASE[ids]


def truth(ids, k: int, metric: str = "l2", queries: np.ndarray = QUERY) -> GroundTruth:
    return GroundTruth(queries, np.asarray(ids), k, metric, rows)


def test_exact_scores_by_hand():
    s = exact_scores(rows, QUERY, np.array([[3, -1, 4]]), "l2")
    assert s[0, 0] == 9.0 and np.isnan(s[0, 1]) and s[0, 2] == 1.0
    q = np.array([[2.0, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(exact_scores(rows, q, np.array([[2, 4]]), "ip"), [[4.0, -2.0]])


def test_a_tied_neighbour_counts_as_right():
    """Ids 0, 1 and 4 are all at distance 1: the listed top-2 is {0, 1}, but returning 4 is as
    right. By id, the same answer scores 0.5."""
    t = truth([[0, 1, 4]], k=2)
    r = t.recall(np.array([[4, 0]]))
    assert r.mean == 1.0 and r.by_id == 0.5
    assert t.tied is not None and t.tied.tolist() == [True]  # the 3rd is as near as the 2nd


def test_a_farther_neighbour_is_wrong():
    t = truth([[0, 1, 4]], k=2)
    assert t.recall(np.array([[2, 0]])).mean == 0.5  # id 2 is at distance 2
    assert t.recall(np.array([[-1, -1]])).mean == 0.0


def test_untied_when_the_next_neighbour_is_farther():
    t = truth([[0, 1, 4, 2]], k=3)
    assert t.tied.tolist() == [False]  # the 4th (distance 2) is beyond the 3rd (distance 1)
    assert truth([[0, 1, 4]], k=3).tied is None  # the 4th is not known


def test_stored_lists_out_of_order_use_the_worst_of_the_top_k():
    """A stored list [4, 2] (distances 1, 2) in the wrong order [2, 4] has the same threshold."""
    assert truth([[2, 4]], k=2).recall(np.array([[0, 2]])).mean == 1.0


def test_tolerance_edge():
    """A neighbour within (1 + TIE_EPS) of the k-th distance is right; just beyond it is not."""
    base = np.array([[1.0, 0], [1.0 + 0.5 * TIE_EPS, 0], [1.0 + 3 * TIE_EPS, 0]], dtype=np.float64)
    t = GroundTruth(np.zeros((1, 2)), np.array([[0, 1]]), 1, "l2", lambda ids: base[ids])
    assert t.recall(np.array([[1]])).mean == 1.0
    assert t.recall(np.array([[2]])).mean == 0.0


def test_inner_product_ties():
    """Under ip the k-th's gap to a perfect match sets the tolerance: with q = (1, 0), ids 0 and
    1 (both (1, 0)) tie at similarity 1, id 2 scores 2 (better), id 4 scores -1 (worse)."""
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    t = truth([[2, 0, 1]], k=2, metric="ip", queries=q)
    assert t.recall(np.array([[2, 1]])).mean == 1.0
    assert t.recall(np.array([[2, 4]])).mean == 0.5
    assert t.tied.tolist() == [True]


def test_duplicates_everywhere():
    """3,000 copies of one vector: every answer is right, though by id almost none is."""
    base = np.ones((3000, 4), dtype=np.float32)
    q = np.ones((5, 4), dtype=np.float32)
    t = GroundTruth(q, np.tile(np.arange(11), (5, 1)), 10, "l2", lambda ids: base[ids])
    found = np.tile(np.arange(2000, 2010), (5, 1))
    r = t.recall(found)
    assert r.mean == 1.0 and r.by_id == 0.0
    assert t.tied.all()


@pytest.mark.parametrize(("offset", "right"), [(4e-6, True), (9e-6, True), (1.1e-5, False), (1e-4, False)])
def test_tolerance_is_one_part_in_a_hundred_thousand(offset, right):
    """The figure itself, not the constant's name: ann-benchmarks' 1e-3 would count neighbours at
    genuinely different distances (84–98 of 400 queries on MiniLM) as ties; float32 ground truth
    rounds at about 1e-6. A neighbour at (1 + offset) times the k-th distance (not squared)."""
    base = np.array([[1.0, 0], [1.0 + offset, 0]], dtype=np.float64)
    t = GroundTruth(np.zeros((1, 2)), np.array([[0, 1]]), 1, "l2", lambda ids: base[ids])
    assert (t.recall(np.array([[1]])).mean == 1.0) is right
