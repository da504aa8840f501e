"""Every registered analysis and every page, timed through a real server, at two sizes.

    python benchmarks/analyses.py                  # ~10 M interactions, baseline ~1 M
    python benchmarks/analyses.py --customers 26000 --baseline-customers 2600 --repeat 3
    python benchmarks/analyses.py --workdir /tmp/analyses-bench   # keep (and reuse) the stores

One run builds (or, with ``--workdir``, reuses) two DuckDB stores with ``benchmarks/gaps.py``'s
simulated company (12 months): the measured one (``--customers``, 260,000 by default: 9.98 M
interactions) and the baseline, a tenth of it (``--baseline-customers``), which shows how each
cost grows with the data. For each store it starts a real ``corridor serve``, waits until the
per-person models are fitted (the API answers those analyses "pending" until then; the time the
first fit took is reported), then:

(a) every analysis of the registry (``corridor.analytics.core.registry``), ``GET /api/v1/<path>``
    with its defaults and an analyst's API key: one first request (its time is reported as
    "first": the answer computed, as after every change of the data), then ``--repeat`` timed
    ones (answered from the app's answer cache on an embedded store while the data stands);
    p50 and p95 of the whole request, and p95 of the server's own time (the
    ``Server-Timing: app;dur=`` header every answer carries);
(b) every page an analyst opens (overview, a touch point, the department and partner lists and
    one of each, the customer search and one customer, cases, rules), signed in through the
    login form; the same timings.

Targets (issue 17, on a 2-core machine): every API analysis p95 < 2 s, every page's server time
p95 < 500 ms. It prints a table (measured, baseline, growth factor, target met) and a last line
starting with ``RESULT``. Every request must answer 200: any other status is reported as a
failure, not timed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from gaps import build, server

API_TARGET_MS = 2000.0
PAGE_TARGET_MS = 500.0
USER, PASSWORD = "bench", "bench-password"


@dataclass
class Timing:
    name: str
    kind: str  # api or page
    url: str
    wall_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    #: the first request's time: computed, not yet kept by the app's answer cache
    cold_ms: float = float("nan")
    error: str | None = None

    def p(self, q: float, server: bool = False) -> float:
        values = self.server_ms if server else self.wall_ms
        return float(np.percentile(values, q)) if values else float("nan")

    @property
    def target(self) -> float:
        return API_TARGET_MS if self.kind == "api" else PAGE_TARGET_MS

    @property
    def met(self) -> bool:
        """API: the whole request's p95; pages: the server's time's p95."""
        value = self.p(95) if self.kind == "api" else self.p(95, server=True)
        return self.error is None and value < self.target


def targets(path: Path) -> dict[str, str]:
    """A touch point, department, partner and customer of the store to open pages of, and an
    analyst with a key (created on first use)."""
    from corridor.auth import accounts
    from corridor.store import open_store

    with contextlib.closing(open_store(f"duckdb:///{path}")) as store:
        if accounts.get_user(store, USER) is None:
            accounts.add_user(store, USER, PASSWORD, "analyst")
        key = accounts.create_key(store, USER, "benchmark")[1]
        one = store.query
        return {
            "key": key,
            "touchpoint": one("SELECT key FROM touchpoints ORDER BY key LIMIT 1")[0][0],
            "department": one(
                "SELECT department FROM touchpoints WHERE department IS NOT NULL "
                "ORDER BY department LIMIT 1"
            )[0][0],
            "partner": one(
                "SELECT partner_id FROM interactions WHERE partner_id IS NOT NULL "
                "GROUP BY partner_id ORDER BY count(*) DESC LIMIT 1"
            )[0][0],
            "person": one(
                "SELECT person_id FROM feedback WHERE person_id IS NOT NULL GROUP BY person_id "
                "ORDER BY count(*) DESC, "
                "person_id LIMIT 1"
            )[0][0],
        }


def pages(t: dict[str, str]) -> dict[str, str]:
    return {
        "overview": "/?range=12m",
        "touch point": f"/touchpoints/{t['touchpoint']}",
        "departments": "/departments",
        "department": f"/departments/{t['department']}",
        "partners": "/partners",
        "partner": f"/partners/{t['partner']}",
        "customer search": f"/customers?q={t['person'][:4]}",
        "customer": f"/customers/{t['person']}",
        "cases": "/cases",
        "rules": "/rules",
    }


def wait_for_models(client: Any, log: Callable[[str], None], timeout_s: float) -> float:
    """Seconds until health says every per-person model is ready."""
    t = time.perf_counter()
    while time.perf_counter() - t < timeout_s:
        models = client.get("/api/v1/health").json().get("models", {})
        if models and all(m["status"] == "ready" for m in models.values()):
            return time.perf_counter() - t
        if any(m["status"] == "failed" for m in models.values()):
            raise RuntimeError(f"a model fit failed: {models}")
        time.sleep(1.0)
    log(f"models not ready after {timeout_s:.0f} s; their analyses will answer pending")
    return float("nan")


def measure(client: Any, timing: Timing, repeat: int) -> None:
    for i in range(repeat + 1):  # the first is the warm-up
        t = time.perf_counter()
        r = client.get(timing.url)
        wall = (time.perf_counter() - t) * 1000
        if r.status_code != 200:
            timing.error = f"{r.status_code}: {r.text[:160]}"
            return
        if not i:
            timing.cold_ms = wall
        else:
            timing.wall_ms.append(wall)
            dur = r.headers.get("server-timing", "app;dur=nan").split("dur=")[1]
            timing.server_ms.append(float(dur))


def run(path: Path, repeat: int, log: Callable[[str], None]) -> tuple[list[Timing], float]:
    import httpx

    from corridor.analytics.core.registry import analyses

    t = targets(path)
    out = [Timing(a.name, "api", f"/api/v1{a.path}") for a in analyses().values()]
    out += [Timing(name, "page", url) for name, url in pages(t).items()]
    auth = {"Authorization": f"Bearer {t['key']}"}
    with (
        server(path, log) as base,
        httpx.Client(base_url=base, timeout=900, headers=auth) as api,
        httpx.Client(base_url=base, timeout=900, follow_redirects=True) as web,
    ):
        fit_s = wait_for_models(api, log, timeout_s=1800)
        r = web.post("/login", data={"username": USER, "password": PASSWORD, "next": "/"})
        r.raise_for_status()
        for timing in out:
            measure(api if timing.kind == "api" else web, timing, repeat)
            log(
                f"  {timing.kind} {timing.name}: first {timing.cold_ms:,.0f} ms, "
                f"p50 {timing.p(50):,.0f} ms, server p95 "
                f"{timing.p(95, server=True):,.0f} ms{' ' + timing.error if timing.error else ''}"
            )
    return out, fit_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=260_000)
    ap.add_argument("--baseline-customers", type=int, default=26_000)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--seed", type=int, default=20250301)
    ap.add_argument("--repeat", type=int, default=5, help="timed requests of each")
    ap.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the stores")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    import tempfile

    root = args.workdir or Path(tempfile.mkdtemp(prefix="corridor-analyses-"))
    results: dict[str, tuple[list[Timing], float]] = {}
    for label, customers in (("baseline", args.baseline_customers), ("measured", args.customers)):
        work = root / f"c{customers}"
        work.mkdir(parents=True, exist_ok=True)
        path = build(work, customers, args.months, args.seed, log)
        log(f"{label}: {customers:,} customers in {path}")
        results[label] = run(path, args.repeat, log)

    measured, fit_s = results["measured"]
    base = {(t.kind, t.name): t for t in results["baseline"][0]}
    print(f"{'':5} {'name':22} {'first ms':>9} {'p50 ms':>9} {'p95 ms':>9} {'server p95':>11} "
          f"{'baseline first':>15} {'growth':>7}  target")  # fmt: skip
    for t in measured:
        b = base[(t.kind, t.name)]
        growth = t.cold_ms / b.cold_ms if b.wall_ms and t.wall_ms else float("nan")
        mark = "ok" if t.met else ("FAILED " + t.error if t.error else "over")
        print(f"{t.kind:5} {t.name:22} {t.cold_ms:9,.0f} {t.p(50):9,.0f} {t.p(95):9,.0f} "
              f"{t.p(95, server=True):11,.0f} {b.cold_ms:15,.0f} {growth:7.1f}  "
              f"< {t.target:,.0f}: {mark}")  # fmt: skip
    apis = [t for t in measured if t.kind == "api"]
    pgs = [t for t in measured if t.kind == "page"]
    print(
        f"RESULT customers={args.customers} baseline_customers={args.baseline_customers} "
        f"models_fit_s={fit_s:.0f} api_within={sum(t.met for t in apis)}/{len(apis)} "
        f"pages_within={sum(t.met for t in pgs)}/{len(pgs)} "
        f"api_p95_max_ms={max(t.p(95) for t in apis if t.wall_ms):.0f} "
        f"api_first_max_ms={max(t.cold_ms for t in apis if t.wall_ms):.0f} "
        f"first_within={sum(t.cold_ms < t.target for t in measured)}/{len(measured)} "
        f"page_server_p95_max_ms={max(t.p(95, server=True) for t in pgs if t.wall_ms):.0f} "
        f"failed={sum(t.error is not None for t in measured)} "
        f"pass={all(t.met for t in measured)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
