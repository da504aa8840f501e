"""Report benchmark: one department's monthly CX report, content to PDF, as its head sees it.

    python benchmarks/report.py                            # ~10 M interactions (260,000 customers)
    python benchmarks/report.py --customers 20000          # a quick check (~0.8 M)
    python benchmarks/report.py --workdir bench-data/gaps  # reuse the gaps benchmark's store

The store is built (or reused) exactly as in ``benchmarks/gaps.py``; its text is analysed first
(themes discovered) when it has none, so the themes section has something to say. Measured in
process, for the department head of ``--department`` and the last full month of the data: the
content (every analysis of the report), the charts and HTML, and the PDF printed by Chromium
(kept open, as the scheduler keeps it across a run), one warm-up then ``--repeat`` runs, p50
and p95 of each and of the whole.

Target: a department's report renders in under 10 s at 10 M interactions. The last line starts
with ``RESULT``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gaps import build, pct


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=260_000)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--department", default="logistics")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    from corridor.auth.scope import Principal, Role, Scope
    from corridor.reports import content, render
    from corridor.reports.pdf import printer
    from corridor.reports.periods import ReportPeriod, Subject
    from corridor.store import open_store
    from corridor.store.maps import load_map
    from corridor.text import jobs

    with contextlib.ExitStack() as stack:
        work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        work.mkdir(parents=True, exist_ok=True)
        path = build(work, args.customers, args.months, args.seed, print)
        store = stack.enter_context(open_store(f"duckdb:///{path}"))
        if not store.query("SELECT count(*) FROM text_analysis")[0][0]:
            t = time.perf_counter()
            jobs.analyze_pending(store)
            jobs.discover_themes(store)
            print(f"text analysed and themes found in {time.perf_counter() - t:.1f} s")
        last = store.query("SELECT max(occurred_at) FROM feedback")[0][0]
        period = ReportPeriod.last_full("month", last)
        head = Principal("head", Role.DEPARTMENT_HEAD, args.department)
        scope = Scope.of(head, load_map(store))
        subject = Subject("department", args.department)
        n = store.query("SELECT count(*) FROM interactions")[0][0]
        print(f"{n:,} interactions; report of {subject.label}, {period.label}")
        times: dict[str, list[float]] = {"content": [], "html": [], "pdf": [], "total": []}
        with printer() as chromium:
            for i in range(args.repeat + 1):
                t0 = time.perf_counter()
                report = content.build_report(store, subject, period, scope=scope)
                t1 = time.perf_counter()
                page = render.html(report)
                t2 = time.perf_counter()
                pdf = chromium.pdf(page)
                t3 = time.perf_counter()
                if i == 0:
                    print(f"warm-up: {t3 - t0:.2f} s, PDF {len(pdf):,} bytes")
                    continue
                for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                    times[k].append(v)
        for k, v in times.items():
            print(f"{k:8s} p50 {pct(v, 50):8.0f} ms  p95 {pct(v, 95):8.0f} ms")
        total = pct(times["total"], 95)
        print(
            f"RESULT report interactions={n} department={args.department} "
            f"p50_ms={pct(times['total'], 50):.0f} p95_ms={total:.0f} target_ms=10000 "
            f"{'ok' if total < 10_000 else 'SLOW'}"
        )


if __name__ == "__main__":
    main()
