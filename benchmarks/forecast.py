"""Forecast benchmark: every touch point × month forecast with its backtest, from the rollup.

    python benchmarks/forecast.py                           # ~10 M interactions (260,000 customers)
    python benchmarks/forecast.py --customers 20000         # a quick check (~0.8 M)
    python benchmarks/forecast.py --workdir bench-data/gaps  # reuse the gaps benchmark's store

The store is built (or reused) exactly as in ``benchmarks/gaps.py``. Measured in process, on the
store: the ``forecast`` analysis of the mean gap by touch point and month (6 months ahead, 80 %
and 95 % intervals, the rolling-origin backtest of the last 6 months: every touch point refitted
at each origin), one warm-up then ``--repeat`` runs, p50 and p95 of the whole call, and one call
split into reading the series from the rollup and forecasting them. Then one call of each other
measure (NPS, CSAT, CES from the rollup; feedback and interaction volumes from their tables).

Target: the gap forecast of every touch point × month in < 2 s at 10 M interactions. The last
line starts with ``RESULT``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gaps import build, pct, timed

MEASURES = ("nps", "csat", "ces", "feedback", "interactions")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=260_000)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--horizon", type=int, default=6)
    ap.add_argument("--origins", type=int, default=6)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    from corridor.analytics.anticipation import series as ser
    from corridor.analytics.anticipation.forecasts import forecast_table
    from corridor.analytics.core.dimensions import Query
    from corridor.analytics.feedback import rollup
    from corridor.store import open_store

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with contextlib.ExitStack() as stack:
        work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        work.mkdir(parents=True, exist_ok=True)
        path = build(work, args.customers, args.months, args.seed, log)
        store = stack.enter_context(contextlib.closing(open_store(f"duckdb:///{path}")))
        counts = {k: store.count(k) for k in ("interactions", "feedback")}
        assert rollup.is_current(store)

        def gap() -> object:
            return forecast_table(store, horizon=args.horizon, origins=args.origins)

        seconds, result = timed(gap, args.repeat)
        frame = result.frame  # type: ignore[attr-defined]
        groups = frame["touchpoint"].nunique()

        query = Query.build(["touchpoint"], "month")
        t = time.perf_counter()
        sums = ser.sums(store, query, "gap")
        read_s = time.perf_counter() - t
        t = time.perf_counter()
        ser.layout(sums, query.by, "month", "gap", None, None)
        layout_s = time.perf_counter() - t
        total_s = float(sum(seconds) / len(seconds))

        others = {}
        for m in MEASURES:
            t = time.perf_counter()
            r = forecast_table(store, measure=m, horizon=args.horizon, origins=args.origins)
            others[m] = (time.perf_counter() - t, len(r.frame) // max(1, args.horizon))

    pooled = result.extra["backtest"]  # type: ignore[attr-defined]
    print(f"\n{counts['interactions']:,} interactions, {counts['feedback']:,} feedback records")
    print(f"gap forecast: {groups} touch points × {args.horizon} months, backtest of "
          f"{args.origins} origins ({pooled['points']} points)")  # fmt: skip
    print(f"  whole call      p50 {pct(seconds, 50):8.1f} ms   p95 {pct(seconds, 95):8.1f} ms")
    print(f"  rollup read         {read_s * 1000:8.1f} ms   series layout {layout_s * 1000:.1f} ms")
    print(
        f"  backtest: mean MASE {pooled['mase']:.3f} (seasonal naive "
        f"{pooled['mase_naive']:.3f}), coverage 80 % {pooled['coverage_80']:.3f}, "
        f"95 % {pooled['coverage_95']:.3f}"
    )
    for m, (s, g) in others.items():
        print(f"  {m:<13}    {s * 1000:8.1f} ms   ({g} groups)")
    print(
        f"RESULT interactions={counts['interactions']} feedback={counts['feedback']} "
        f"groups={groups} horizon={args.horizon} origins={args.origins} "
        f"gap_p50_ms={pct(seconds, 50):.1f} gap_p95_ms={pct(seconds, 95):.1f} "
        f"rollup_read_ms={read_s * 1000:.1f} mean_ms={total_s * 1000:.1f} "
        + " ".join(f"{m}_ms={s * 1000:.1f}" for m, (s, _) in others.items())
        + f" target_met={pct(seconds, 95) < 2000}"
    )


if __name__ == "__main__":
    main()
