"""Every run option's rule, declared once: its flag, default, range or choices, help and the one
message that refuses a bad value. The command line takes its help and defaults from here, and the
library's checks (``RunConfig``, ``EstimateConfig``, ``Grid``, ``Target``) call :func:`check`, so
an option means the same thing, and is refused in the same words, wherever it is given (after
scikit-learn's parameter constraints).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import GpupqError


@dataclass(frozen=True)
class Param:
    """One option. low/high: bounds (None: unbounded), inclusive unless ``above``; choices: the
    allowed words; unit: said after a bound in the message (``seconds``). NaN and infinities are
    refused wherever a number is asked for."""

    flag: str
    help: str
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    above: bool = False  # the lower bound itself is refused (more than, not at least)

    def check(self, value: Any) -> None:
        """Refuse ``value`` with one line naming the flag, or return."""
        if self.choices:
            if value not in self.choices:
                raise GpupqError(f"{self.flag} {value!r} is not one of {', '.join(self.choices)}")
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GpupqError(f"{self.flag} must be a number (got {value!r})")
        ok = math.isfinite(value)
        ok = ok and (self.low is None or (value > self.low if self.above else value >= self.low))
        ok = ok and (self.high is None or value <= self.high)
        if not ok:
            if not math.isfinite(value):
                raise GpupqError(f"{self.flag} must be a finite number (got {value})")
            raise GpupqError(f"{self.flag} {self.range()} (got {value})")

    def range(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.above:
            upper = f" and at most {_num(self.high)}" if self.high is not None else ""
            return f"must be more than {_num(self.low)}{upper}{unit}"
        if self.low is not None and self.high is not None:
            return f"must be between {_num(self.low)} and {_num(self.high)}{unit}"
        if self.low is not None:
            return f"must be at least {_num(self.low)}{unit}"
        return f"must be at most {_num(self.high)}{unit}"


def _num(x: float | None) -> str:
    return f"{x:g}" if isinstance(x, float) and not float(x).is_integer() else f"{int(x or 0)}"


#: seeds are mixed into 64-bit hashes with small offsets (seed + 1, + 2, + 3): 32 bits leave room
MAX_SEED = 2**32 - 1

PARAMS: dict[str, Param] = {
    # what every command shares
    "k": Param("-k", "neighbours returned; recall@k", 10, low=1),
    "queries": Param("--queries", "queries held out of the data; with --queries-file, its first N rows", 100, low=1),
    "metric": Param("--metric", "distance: l2, ip (inner product) or cosine", None, choices=("l2", "ip", "cosine")),
    "seed": Param("--seed", "seed for data, split and training", 0, low=0, high=MAX_SEED),
    "batch_size": Param("--batch-size", "queries per search call", 1024, low=1),
    "threads": Param("--threads", "most host threads kept busy (default: the cores this process may use)", None, low=1),
    "min_time": Param(
        "--min-time",
        "seconds of runs each timed phase or point covers, the median reported (0: one run)",
        None,
        low=0,
        high=600,
        unit="seconds",
    ),
    # one index
    "nlist": Param("--nlist", "IVF lists (coarse centroids)", 128, low=1),
    "m": Param("--m", "PQ sub-quantizers (sub-vectors per code); must divide d", 16, low=1),
    "nbits": Param("--nbits", "bits per sub-quantizer code, 4 to 8", 8, low=4, high=8),
    "nprobe": Param(
        "--nprobe", "lists probed per query (FAISS's default is 1, which rarely gives useful recall)", 8, low=1
    ),
    "rerank": Param("--rerank", "candidates re-ranked exactly with stored vectors (0 = no re-rank)", 100, low=0),
    "rerank_store": Param(
        "--rerank-store", "precision of the vectors kept for re-ranking", "fp32", choices=("fp32", "fp16", "sq8")
    ),
    # recommend's target
    "target_recall": Param("--target-recall", "recall@k to reach, e.g. 0.9", None, low=0, high=1, above=True),
    "min_qps": Param("--min-qps", "fewest queries/s acceptable (measured here)", None, low=0, above=True),
}


def check(name: str, value: Any) -> None:
    """Check ``value`` against the rule of parameter ``name`` (a key of :data:`PARAMS`)."""
    PARAMS[name].check(value)


def help_for(name: str, default: Any = ...) -> str:
    """The option's help with its default, as ``--help`` shows it."""
    p = PARAMS[name]
    shown = p.default if default is ... else default
    return p.help + (f" (default {shown})" if shown is not None else "")
