"""The recommender's search: which build to train next, and what each verdict rules out.

A candidate is a build (nlist, m, nbits, OPQ) deployed with a re-rank store or none; its memory is
known before anything is trained. The search wants the cheapest candidates that meet the target,
and uses the problem's structure to train few of them. The rules, each counted in
:attr:`Frontier.pruned` under its name:

- ``dearer``: a candidate that costs at least as much as the ``answers``-th cheapest build known
  to meet cannot be among the answers, nor can the same build with a dearer store than one that
  meets; neither is trained.
- ``beyond the runners-up' reach``: runners-up are alternatives to the answer, not the whole
  space above it: with ``within`` given, a candidate dearer than ``within`` times the cheapest
  build known to meet is not trained (the answer itself is never dearer than that build, so
  nothing this rules out could have been it).
- ``smaller code than a short one``: within a family (nlist, OPQ and store fixed) recall rises
  with the code, in m at fixed nbits and in nbits at fixed m. A candidate whose m and nbits are
  both at most those of one that fell short (its recall below the target at every nprobe) falls
  short too.
- ``smaller code than an undecided one``: likewise, one at most an undecided candidate's m and
  nbits cannot be shown to meet the target with these queries; the undecided one is reported.
- ``fewer lists, no larger code than one that fell short`` (or ``than an undecided one``): at
  the same code, fewer lists leave larger residuals for the PQ to encode, so its ranking is no
  better at any nprobe (at full probe every vector is a candidate either way). Measured with
  FAISS on 60,000 MiniLM embeddings: below recall 0.98, IVF1024's best recall exceeded IVF256's
  for every (m, nbits, store, depth), by 1 to 12 points. A short candidate thus also rules out
  the same code, or a smaller one, at every smaller nlist.

Which build next: the cheapest candidate not yet decided names a family row (nlist, OPQ, nbits,
store); of that row's undecided candidates cheaper than the current bound, the median m is
trained, so each verdict settles half the row (bisection) instead of one candidate; it is
trained at the largest nlist still open for that code and store, whose verdict, when short,
settles every smaller nlist too. A build is evaluated for every store whose candidate is still
open, since its PQ ranking serves them all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from .settings import Build

DEARER = "dearer than the answers found"
BEYOND = "beyond the runners-up' reach"
BELOW_SHORT = "smaller code than one that fell short"
BELOW_UNDECIDED = "smaller code than an undecided one"
FEWER_LISTS_SHORT = "fewer lists, no larger code than one that fell short"
FEWER_LISTS_UNDECIDED = "fewer lists, no larger code than an undecided one"
#: verdicts that settle a candidate as one of the answers
MEETS = "meets"


@dataclass(frozen=True)
class Option:
    """One candidate of the search: a build and a re-rank store ("" for none), and its memory."""

    build: Build
    store: str
    memory_bytes: int

    @property
    def row(self) -> tuple[int, bool, int, str]:
        """The family row bisection walks: everything but m."""
        return (self.build.nlist, self.build.opq, self.build.nbits, self.store)


@dataclass
class Frontier:
    """The state of the search over ``options`` (see the module docstring)."""

    options: Sequence[Option]
    answers: int = 3
    within: float | None = None  # runners-up: at most this multiple of the cheapest that meets
    verdicts: dict[tuple[Build, str], str] = field(default_factory=dict)
    pruned: Counter[str] = field(default_factory=Counter)
    _open: list[Option] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._open = sorted(self.options, key=lambda o: (o.memory_bytes, o.build, o.store))

    @property
    def bound(self) -> int | None:
        """Memory at and above which nothing can be an answer: the ``answers``-th cheapest known
        to meet, or None while fewer meet."""
        met = sorted(self._met().values())
        return met[self.answers - 1] if len(met) >= self.answers else None

    def _met(self) -> dict[Build, int]:
        """Each build known to meet, and its cheapest option that does (a dearer store on the same
        build is never a runner-up)."""
        out: dict[Build, int] = {}
        for o in self.options:
            if self.verdicts.get((o.build, o.store)) == MEETS:
                out[o.build] = min(out.get(o.build, o.memory_bytes), o.memory_bytes)
        return out

    def open_options(self) -> list[Option]:
        """Candidates neither evaluated nor ruled out, cheapest first."""
        return list(self._open)

    def next_build(self) -> tuple[Build, list[str]] | None:
        """The build to evaluate next and the stores to evaluate it with; None when the cheapest
        answers are settled (or nothing is left)."""
        self._prune()
        if not self._open:
            return None
        first = self._open[0]
        row = [o for o in self._open if o.row == first.row]
        row.sort(key=lambda o: o.build.m)
        pick = row[len(row) // 2] if len(row) > 2 else first
        # the same code and store at the largest nlist still open: short there is short at all
        pick = max(
            (o for o in self._open if o.store == pick.store and _code(o.build) == _code(pick.build)),
            key=lambda o: o.build.nlist,
        )
        stores = [o.store for o in self._open if o.build == pick.build]
        return pick.build, stores

    def record(self, build: Build, store: str, verdict: str) -> None:
        """What evaluating ``build`` with ``store`` found: meets, undecided, short or slow."""
        self.verdicts[(build, store)] = verdict
        self._open = [o for o in self._open if (o.build, o.store) != (build, store)]

    def _prune(self) -> None:
        bound, met = self.bound, self._met()
        reach = self.within * min(met.values()) if self.within is not None and met else None
        keep = []
        for o in self._open:
            if o.build in met and o.memory_bytes >= met[o.build]:
                reason: str | None = DEARER
            elif reach is not None and o.memory_bytes > reach:
                reason = BEYOND
            else:
                reason = self._ruled_out(o, bound)
            if reason:
                self.pruned[reason] += 1
            else:
                keep.append(o)
        self._open = keep

    def _ruled_out(self, o: Option, bound: int | None) -> str | None:
        if bound is not None and o.memory_bytes >= bound:
            return DEARER
        b = o.build
        for (eb, es), verdict in self.verdicts.items():
            if verdict not in ("short", "undecided") or es != o.store:
                continue
            if eb.opq == b.opq and b.nlist <= eb.nlist and b.m <= eb.m and b.nbits <= eb.nbits:
                if b.nlist == eb.nlist:
                    return BELOW_SHORT if verdict == "short" else BELOW_UNDECIDED
                return FEWER_LISTS_SHORT if verdict == "short" else FEWER_LISTS_UNDECIDED
        return None

    def summary(self) -> dict[str, int]:
        """How the space was covered: evaluated, ruled out by each rule, and left open."""
        return {
            "candidates": len(self.options),
            "evaluated": len(self.verdicts),
            **self.pruned,
            "open": len(self._open),
        }


def _code(b: Build) -> tuple[int, int, bool]:
    """What a build's code is, whatever its nlist: m, nbits and OPQ."""
    return (b.m, b.nbits, b.opq)
