"""Gap query benchmark: the API (served from the feedback rollup) against raw DuckDB SQL over the
base tables and against pandas, on a simulated company.

    python benchmarks/gaps.py                              # ~10 M interactions (260,000 customers)
    python benchmarks/gaps.py --customers 20000 --repeat 10   # a quick check (~0.8 M)
    python benchmarks/gaps.py --workdir /tmp/gaps-bench    # keep (and later reuse) the store

One run builds (or, with ``--workdir``, reuses) a DuckDB store loaded by ``import_dataset`` from
``simulate(customers, months=12, seed)`` and then measures, for the gap analysis by touch point
and month (n, mean gap, its standard error and 95 % interval, per touch point × month):

(a) API: a real ``corridor serve`` process on that store, ``GET /api/v1/gaps?by=touchpoint&
    period=month`` with httpx: one warm-up request (it also brings the rollup up to date), then
    ``--repeat`` timed requests; p50 and p95 of the wall time of the whole request;
(b) raw DuckDB: the same aggregation written by hand in SQL over the base tables (feedback LEFT
    JOIN interactions for the touch point, as the analytics do), on a read-only connection to the
    same file; one warm-up, then ``--repeat`` runs;
(c) pandas: the needed columns read once from the same store (timed separately), then merge +
    groupby + the same formulas, ``--pandas-repeat`` runs.

The three answers are checked against each other (same groups, same n, same mean gap). It prints
a table and a last line starting with ``RESULT``. Targets: API p50 no slower than raw DuckDB,
>= 10x faster than pandas, API p95 < 200 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

QUERY = {"by": "touchpoint", "period": "month"}
Z95 = 1.959963984540054

RAW_SQL = """
WITH rated AS (
    SELECT coalesce(f.touchpoint, i.touchpoint) AS touchpoint,
           date_trunc('month', f.occurred_at) AS period,
           f.experience - f.expectation AS gap
    FROM feedback f LEFT JOIN interactions i ON f.interaction_id = i.interaction_id
    WHERE f.expectation IS NOT NULL AND f.experience IS NOT NULL
)
SELECT touchpoint, period, count(*) AS n, avg(gap) AS mean_gap,
       stddev_samp(gap) / sqrt(count(*)) AS se_gap,
       avg(gap) - 1.959963984540054 * stddev_samp(gap) / sqrt(count(*)) AS mean_gap_low,
       avg(gap) + 1.959963984540054 * stddev_samp(gap) / sqrt(count(*)) AS mean_gap_high
FROM rated
GROUP BY touchpoint, period
ORDER BY touchpoint, period
"""


# -- data -----------------------------------------------------------------------------------------
def fill(
    store: Any, data: Path, customers: int, months: int, seed: int, log: Callable[[str], None]
) -> None:
    """Simulate the company into the folder ``data`` and import it into ``store``, timed."""
    from corridor.ingest.files import import_dataset
    from corridor.ingest.pipeline import Ingestor
    from corridor.simulate import simulate

    t = time.perf_counter()
    res = simulate(customers=customers, months=months, seed=seed, out_dir=data)
    log(f"simulated {res.counts} in {time.perf_counter() - t:.1f} s")
    ing = Ingestor(store)
    try:
        t = time.perf_counter()
        import_dataset(ing, data)
        log(f"imported in {time.perf_counter() - t:.1f} s")
    finally:
        ing.close()


def build(work: Path, customers: int, months: int, seed: int, log: Callable[[str], None]) -> Path:
    """A DuckDB store with the simulated company, built once per (customers, months, seed)."""
    from corridor.analytics.feedback import rollup
    from corridor.store import open_store

    path, marker = (work / "gaps.duckdb").resolve(), work / "gaps.json"
    spec = {"customers": customers, "months": months, "seed": seed}
    if path.exists() and marker.exists() and json.loads(marker.read_text()).get("spec") == spec:
        log(f"reusing {path} ({json.loads(marker.read_text())['counts']})")
        return path
    for p in (path, Path(f"{path}.wal"), marker):
        p.unlink(missing_ok=True)
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    with contextlib.closing(open_store(f"duckdb:///{path}")) as store:
        fill(store, data, customers, months, seed, log)
        t = time.perf_counter()
        days = rollup.refresh(store)
        build_s = time.perf_counter() - t
        rows = store.count("feedback_rollup")
        log(f"rollup built: {days} days, {rows:,} rows in {build_s:.1f} s")
        counts = {k: store.count(k) for k in ("people", "interactions", "feedback")}
        store.checkpoint()  # type: ignore[attr-defined]
    shutil.rmtree(data, ignore_errors=True)
    marker.write_text(json.dumps({"spec": spec, "counts": counts, "rollup_build_s": build_s}))
    return path


# -- measurements ---------------------------------------------------------------------------------
def pct(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, q))


def timed(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> tuple[list[float], Any]:
    out = None
    for _ in range(warmup):
        out = fn()
    seconds = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - t)
    return seconds, out


def raw_duckdb(path: Path, repeat: int) -> tuple[list[float], pd.DataFrame]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return timed(lambda: con.execute(RAW_SQL).df(), repeat)
    finally:
        con.close()


def pandas_frames(path: Path) -> tuple[float, pd.DataFrame, pd.DataFrame]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        t = time.perf_counter()
        fb = con.execute(
            "SELECT interaction_id, touchpoint, occurred_at, expectation, experience FROM feedback"
        ).df()
        it = con.execute("SELECT interaction_id, touchpoint FROM interactions").df()
        return time.perf_counter() - t, fb, it
    finally:
        con.close()


def pandas_gaps(fb: pd.DataFrame, it: pd.DataFrame) -> pd.DataFrame:
    rated = fb[fb["expectation"].notna() & fb["experience"].notna()]
    df = rated.merge(
        it.rename(columns={"touchpoint": "i_touchpoint"}), on="interaction_id", how="left"
    )
    touchpoint = df["touchpoint"].fillna(df["i_touchpoint"])
    at = pd.to_datetime(df["occurred_at"], utc=True)
    period = at.dt.tz_localize(None).dt.to_period("M").dt.start_time
    gap = df["experience"] - df["expectation"]
    g = pd.DataFrame({"touchpoint": touchpoint, "period": period, "gap": gap}).groupby(
        ["touchpoint", "period"], dropna=False
    )["gap"]
    out = g.agg(n="count", mean_gap="mean", sd="std").reset_index()
    out["se_gap"] = out["sd"] / np.sqrt(out["n"])
    out["mean_gap_low"] = out["mean_gap"] - Z95 * out["se_gap"]
    out["mean_gap_high"] = out["mean_gap"] + Z95 * out["se_gap"]
    return out.drop(columns="sd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(path: Path, log: Callable[[str], None]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "corridor.cli", "serve", "--store", f"duckdb:///{path}",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read()[-2000:] if proc.stderr else ""
                raise RuntimeError(f"`corridor serve` exited: {err}")
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("`corridor serve` did not come up in 120 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def bench_key(path: Path) -> str:
    """An API key of an analyst ``bench`` (created on first use): the API needs one."""
    from corridor.auth import accounts
    from corridor.store import open_store

    with contextlib.closing(open_store(f"duckdb:///{path}")) as store:
        if accounts.get_user(store, "bench") is None:
            accounts.add_user(store, "bench", "bench-password", "analyst")
        return accounts.create_key(store, "bench", "benchmark")[1]


def api(path: Path, repeat: int, log: Callable[[str], None]) -> tuple[list[float], float, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {bench_key(path)}"}
    with (
        server(path, log) as base,
        httpx.Client(base_url=base, timeout=600, headers=headers) as client,
    ):

        def get() -> Any:
            r = client.get("/api/v1/gaps", params=QUERY)
            r.raise_for_status()
            return r.json()

        t = time.perf_counter()
        get()  # first request: brings the rollup up to date (nothing to do after `build`)
        first = time.perf_counter() - t
        seconds, body = timed(get, repeat, warmup=0)
    return seconds, first, body


def check(api_body: Any, raw: pd.DataFrame, pdf: pd.DataFrame) -> str:
    rows = pd.DataFrame(api_body["rows"])
    a = rows[["touchpoint", "period_label", "n", "mean_gap"]].copy()
    a = a.rename(columns={"period_label": "month"})
    out = []
    for name, other in (("raw", raw), ("pandas", pdf)):
        b = other[["touchpoint", "period", "n", "mean_gap"]].copy()
        b["month"] = pd.to_datetime(b["period"]).dt.strftime("%Y-%m")
        m = a.merge(b.drop(columns="period"), on=["touchpoint", "month"], how="outer",
                    suffixes=("", "_o"), indicator=True)  # fmt: skip
        ok = (
            (m["_merge"] == "both").all()
            and (m["n"] == m["n_o"]).all()
            and np.allclose(m["mean_gap"], m["mean_gap_o"], rtol=1e-9, atol=1e-12)
        )
        out.append(f"{name}={'same' if ok else 'DIFFERENT'}")
        if not ok:
            print(m[m["_merge"] != "both"].head(), file=sys.stderr)
    return ",".join(out)


# -- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=260_000,
                    help="simulated customers (default 260,000: ~10 M interactions)")  # fmt: skip
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--seed", type=int, default=20250301)
    ap.add_argument("--repeat", type=int, default=30, help="timed runs of API and raw SQL")
    ap.add_argument("--pandas-repeat", type=int, default=5, help="timed pandas runs")
    ap.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the store here")
    args = ap.parse_args(argv)
    # absolute: the store URLs below are duckdb:///<path>, an absolute path
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="corridor-gaps-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, flush=True)

    try:
        path = build(work, args.customers, args.months, args.seed, log)
        meta = json.loads((work / "gaps.json").read_text())
        log(f"{os.cpu_count()} CPU cores; store {path.stat().st_size / 1e9:.2f} GB")
        api_s, first_s, body = api(path, args.repeat, log)
        raw_s, raw_df = raw_duckdb(path, args.repeat)
        load_s, fb, it = pandas_frames(path)
        pd_s, pd_df = timed(lambda: pandas_gaps(fb, it), args.pandas_repeat, warmup=0)
        agree = check(body, raw_df, pd_df)

        figures = {
            "api": (pct(api_s, 50), pct(api_s, 95)),
            "raw_duckdb": (pct(raw_s, 50), pct(raw_s, 95)),
            "pandas": (pct(pd_s, 50), pct(pd_s, 95)),
        }
        lines = [
            ("API GET /api/v1/gaps (corridor serve, rollup)", *figures["api"], len(api_s)),
            ("raw DuckDB SQL over feedback ⟕ interactions", *figures["raw_duckdb"], len(raw_s)),
            ("pandas merge + groupby (columns in memory)", *figures["pandas"], len(pd_s)),
        ]
        print()
        print(f"{'touchpoint x month gaps':<48}{'p50 ms':>10}{'p95 ms':>10}{'runs':>6}")
        for name, p50, p95, runs in lines:
            print(f"{name:<48}{p50:>10.1f}{p95:>10.1f}{runs:>6}")
        print(f"groups: {len(body['rows'])}; counts {meta['counts']}")
        print(f"first API request after start: {first_s * 1000:.0f} ms; rollup build after import: "
              f"{meta['rollup_build_s']:.1f} s; pandas column load: {load_s:.1f} s")  # fmt: skip
        results = {
            "interactions": meta["counts"]["interactions"],
            "feedback": meta["counts"]["feedback"],
            "api_p50_ms": f"{figures['api'][0]:.1f}",
            "api_p95_ms": f"{figures['api'][1]:.1f}",
            "raw_duckdb_p50_ms": f"{figures['raw_duckdb'][0]:.1f}",
            "raw_duckdb_p95_ms": f"{figures['raw_duckdb'][1]:.1f}",
            "pandas_p50_ms": f"{figures['pandas'][0]:.1f}",
            "pandas_p95_ms": f"{figures['pandas'][1]:.1f}",
            "speedup_vs_raw": f"{figures['raw_duckdb'][0] / figures['api'][0]:.2f}",
            "speedup_vs_pandas": f"{figures['pandas'][0] / figures['api'][0]:.1f}",
            "rollup_build_s": f"{meta['rollup_build_s']:.1f}",
            "answers": agree,
        }
        print()
        print("RESULT " + " ".join(f"{k}={v}" for k, v in results.items()), flush=True)
        return 0 if "DIFFERENT" not in agree else 1
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
