"""Dashboard benchmark: the corridor overview page, served by a real ``corridor serve``, against
the same figures computed by hand in raw DuckDB SQL over the base tables.

    python benchmarks/dashboard.py                      # ~10 M interactions (260,000 customers)
    python benchmarks/dashboard.py --customers 20000    # a quick check (~0.8 M)
    python benchmarks/dashboard.py --workdir bench-data/gaps   # reuse the gaps benchmark's store

The store is built (or reused) exactly as in ``benchmarks/gaps.py``. Measured:

(a) page: a signed-in analyst's ``GET /?range=12m`` (the overview: the corridor's touch points
    with mean gap, interval, n, monthly trend and change against the previous month, plus NPS,
    CSAT and CES tiles with intervals and monthly trends): one warm-up, then ``--repeat`` timed
    requests; p50/p95 of the whole request's wall time, and the server time the page reports
    (the analytics behind it, without template rendering and transfer);
(b) raw DuckDB: the four aggregations behind the page written by hand in SQL over the base
    tables (feedback LEFT JOIN interactions), on a read-only connection to the same file.

Target: overview server time < 500 ms at 10 M interactions. Last line starts with ``RESULT``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gaps import build, pct, server, timed

RAW = [
    # gap per touch point over the window
    """SELECT coalesce(f.touchpoint, i.touchpoint) tp, count(*) n,
              avg(f.experience - f.expectation), stddev_samp(f.experience - f.expectation)
       FROM feedback f LEFT JOIN interactions i ON f.interaction_id = i.interaction_id
       WHERE f.expectation IS NOT NULL AND f.experience IS NOT NULL
         AND f.occurred_at >= $since AND f.occurred_at < $until GROUP BY 1""",
    # ... per touch point and month (the trend)
    """SELECT coalesce(f.touchpoint, i.touchpoint) tp, date_trunc('month', f.occurred_at) m,
              count(*) n, avg(f.experience - f.expectation),
              stddev_samp(f.experience - f.expectation)
       FROM feedback f LEFT JOIN interactions i ON f.interaction_id = i.interaction_id
       WHERE f.expectation IS NOT NULL AND f.experience IS NOT NULL
         AND f.occurred_at >= $since AND f.occurred_at < $until GROUP BY 1, 2""",
    # NPS, CSAT top-2-box, CES over the window
    """SELECT count(nps), count(*) FILTER (nps >= 9), count(*) FILTER (nps <= 6),
              count(csat), count(*) FILTER (csat >= 4), count(ces), avg(ces), stddev_samp(ces)
       FROM feedback WHERE occurred_at >= $since AND occurred_at < $until""",
    # ... per month
    """SELECT date_trunc('month', occurred_at), count(nps), count(*) FILTER (nps >= 9),
              count(*) FILTER (nps <= 6), count(csat), count(*) FILTER (csat >= 4), count(ces),
              avg(ces), stddev_samp(ces)
       FROM feedback WHERE occurred_at >= $since AND occurred_at < $until GROUP BY 1""",
]


def raw_duckdb(path: Path, repeat: int) -> list[float]:
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        con.execute("SET TimeZone = 'UTC'")
        last = con.sql("SELECT max(occurred_at) FROM feedback").fetchall()[0][0]
        until = last.date() + timedelta(days=1)
        since = until - timedelta(days=365)
        params = {"since": f"{since} 00:00:00+00", "until": f"{until} 00:00:00+00"}

        def run() -> None:
            for q in RAW:
                con.execute(q, params).fetchall()

        seconds, _ = timed(run, repeat)
    return seconds


def page(path: Path, repeat: int) -> tuple[list[float], list[float], int]:
    import httpx

    from corridor.auth import accounts
    from corridor.store import open_store

    with contextlib.closing(open_store(f"duckdb:///{path}")) as store:
        if accounts.get_user(store, "bench-web") is None:
            accounts.add_user(store, "bench-web", "bench-password", "analyst")
    with (
        server(path, print) as base,
        httpx.Client(base_url=base, timeout=600, follow_redirects=True) as client,
    ):
        r = client.post(
            "/login", data={"username": "bench-web", "password": "bench-password", "next": "/"}
        )
        r.raise_for_status()
        server_ms: list[float] = []
        cards = 0

        def get() -> None:
            nonlocal cards
            r = client.get("/", params={"range": "12m"})
            r.raise_for_status()
            m = re.search(r"Server time (\d+) ms", r.text)
            assert m, "the overview reports its server time"
            server_ms.append(float(m.group(1)))
            cards = r.text.count('class="tp gap-')

        seconds, _ = timed(get, repeat)
    return seconds, server_ms[1:], cards


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=260_000)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--seed", type=int, default=20250301)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the store here")
    args = ap.parse_args(argv)
    # absolute: the store URLs below are duckdb:///<path>, an absolute path
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="corridor-dash-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    path = build(work, args.customers, args.months, args.seed, print)
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        n = con.sql("SELECT count(*) FROM interactions").fetchall()[0][0]
    t = time.perf_counter()
    seconds, server_ms, cards = page(path, args.repeat)
    print(f"page timings took {time.perf_counter() - t:.1f} s; {cards} touch point cards")
    raw = raw_duckdb(path, args.repeat)
    s50 = sorted(server_ms)[len(server_ms) // 2]
    s95 = sorted(server_ms)[int(len(server_ms) * 0.95) - 1]
    print(f"{'what':<46}{'p50 ms':>10}{'p95 ms':>10}")
    print(f"{'overview page, whole request':<46}{pct(seconds, 50):>10.1f}{pct(seconds, 95):>10.1f}")
    print(f"{'overview page, server time (analytics)':<46}{s50:>10.1f}{s95:>10.1f}")
    print(
        f"{'raw DuckDB SQL, same four aggregations':<46}{pct(raw, 50):>10.1f}{pct(raw, 95):>10.1f}"
    )
    print(
        f"RESULT dashboard overview interactions={n} page_p50_ms={pct(seconds, 50):.1f} "
        f"page_p95_ms={pct(seconds, 95):.1f} server_p50_ms={s50:.0f} server_p95_ms={s95:.0f} "
        f"raw_sql_p50_ms={pct(raw, 50):.1f} target_server_ms=500 "
        f"{'PASS' if s95 < 500 else 'MISS'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
