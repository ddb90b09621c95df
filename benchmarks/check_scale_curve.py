"""Check ``--scale-curve`` on a real set: predict the whole base from its quarter, then measure it.

    python benchmarks/check_scale_curve.py --data minilm60k.npy --metric cosine \\
        --setting IVF256,PQ192x6:124 --setting IVF1024,PQ32:48:200:sq8

For each setting (a build at the whole base's size, nlist:nprobe[:rerank:store] as the
recommendation would deploy it), the scale curve is measured on nested subsamples of 1/32, 1/16,
1/8 and 1/4 of the base and extended to the whole base; then the whole base is measured directly
(the same nested order, the same queries and ground-truth rule). Prints one markdown row per
setting: the subsample recalls, the chosen form, the prediction with its band, and the measurement
with its 95% interval.
"""

from __future__ import annotations

import argparse
import re
import time

import gpupq
from gpupq.scalecurve import scale_curve
from gpupq.session import RunConfig, open_session
from gpupq.settings import Build, Setting


def parse_setting(text: str) -> tuple[Build, Setting]:
    m = re.fullmatch(r"IVF(\d+),PQ(\d+)(?:x(\d+))?:(\d+)(?::(\d+):(\w+))?", text)
    if not m:
        raise SystemExit(f"--setting {text!r}: give IVF<nlist>,PQ<m>[x<nbits>]:<nprobe>[:<rerank>:<store>]")
    nlist, mm, nbits, nprobe, rerank, store = m.groups()
    build = Build(int(nlist), int(mm), int(nbits or 8))
    return build, Setting(int(nprobe), int(rerank or 0), store or "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--metric", default="cosine")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--setting", action="append", required=True)
    args = p.parse_args(argv)
    data = gpupq.load_vectors(args.data, metric=args.metric)
    cfg = RunConfig(k=10, queries=args.queries, metric=args.metric)
    print("| setting | 1/32 / 1/16 / 1/8 / 1/4 | form | predicted at N [band] | measured at N [95% CI] | inside |")
    print("| --- | --- | --- | --- | --- | --- |")
    with open_session(data, cfg, "numpy") as session:
        split, be = session.split, session.backend
        nb = split.n_base
        for text in args.setting:
            build, setting = parse_setting(text)
            t0 = time.perf_counter()
            quarter = [nb // 32, nb // 16, nb // 8, nb // 4]
            curve = scale_curve(data, split, build, setting, cfg.k, be, cfg.seed, quarter, nb)
            whole = scale_curve(data, split, build, setting, cfg.k, be, cfg.seed, [nb // 4, nb], None)
            measured = whole.points[-1].recall
            mean, low, high = curve.prediction
            inside = low <= measured.mean <= high
            subs = " / ".join(f"{pt.recall.mean:.3f}" for pt in curve.points)
            print(
                f"| {text} | {subs} | {curve.trend.form} | {mean:.3f} [{low:.3f}, {high:.3f}] | "
                f"{measured.mean:.3f} [{measured.ci95_low:.3f}, {measured.ci95_high:.3f}] | "
                f"{'yes' if inside else 'no'} ({time.perf_counter() - t0:.0f} s) |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
