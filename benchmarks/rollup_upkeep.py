"""Feedback rollup upkeep: what keeping the rollup current adds to a feedback batch's ingest.

    python benchmarks/rollup_upkeep.py                  # ~10 M interactions (260,000 customers)
    python benchmarks/rollup_upkeep.py --customers 26000 --batches 10 --sizes 20,500
    python benchmarks/rollup_upkeep.py --workdir /tmp/ab/c260000   # gaps.py's store, kept
    python benchmarks/rollup_upkeep.py --customers 26000 \
        --postgres postgresql://postgres@127.0.0.1:5432/postgres     # the same on PostgreSQL

One run builds (or, with ``--workdir``, reuses) ``benchmarks/gaps.py``'s store, copies it to a
scratch file, and posts batches of new feedback records (each about an interaction sampled among
the store's last ``--recent-days`` days of interactions, default 14, or among all of them with
``--recent-days 0``; with its person and touch point; dated within the last three days) through
``Ingestor.ingest`` (what the API's ``POST /api/v1/feedback`` calls), the modes taking turns
batch by batch so that a change of the machine's load falls on all of them alike:

- ``none``: the same ingest with no rollup upkeep at all (the baseline);
- ``delta``: the inline path (``rollup_upkeep = "inline"``; the CLI's and the library's): a batch
  of new records adds its own rollup rows in its transaction (``rollup_delta.add_new_feedback``:
  its interactions and persons looked up by key);
- ``queue``: the server's path (``rollup_upkeep = "background"``): the batch queues its records
  in ``rollup_pending``; the fold adds their rows after the commit. The script times the batch's
  ingest (what a client waits for), then, apart, a gap read while the batch's records are
  queued (``rollup.sums`` by touch point over the whole store: the queued records' rows come
  from the base tables in the same query), the fold of that one batch (``fold_all``: a server
  folds every batch committed within 0.2 s together, so this is its cost at the most), and the
  same read again with nothing queued;
- ``rebuild``: the path before issue 17's change (``rollup_delta.DELTA_MAX = 0``): the batch
  marks its days and the Ingestor rebuilds them after the commit, joining them with every
  interaction.

With ``--postgres`` (a server URL whose user may create databases) the store is a PostgreSQL
database built (once; kept, named after the simulation) by importing the same simulated data,
and each run works on a copy (``CREATE DATABASE ... TEMPLATE``), dropped afterwards.

Each batch's time is the whole ``ingest`` call, the refresh after its commit included. It prints
p50/p95 per mode and size, the upkeep (delta / none - 1 and queue / none - 1; issue 17's target:
at most 10 %) and the rebuild's, the fold's and the reads' times, and a last line starting with
``RESULT``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from gaps import build, fill

from corridor.analytics.core.dimensions import Query
from corridor.analytics.feedback import rollup, rollup_delta
from corridor.ingest import after_commit
from corridor.ingest.pipeline import ROLLUP_VERSION, Ingestor
from corridor.store import open_store

MODES = ("none", "delta", "queue", "rebuild")
#: the queue mode's extra figures, timed apart from its ingest
EXTRAS = ("read_queued", "fold", "read_folded")
#: feedback is about an interaction of the store's last this many days (transactional surveys
#: are answered within days of the interaction); ``--recent-days 0`` samples every interaction
RECENT_DAYS = 14


class NoRollup(Ingestor):
    """The ingest path with no rollup upkeep: the baseline."""

    def _schema_at(self, version: int) -> bool:
        return False if version == ROLLUP_VERSION else super()._schema_at(version)


def build_postgres(
    server: str, customers: int, months: int, seed: int, log: Any
) -> tuple[str, str]:
    """A PostgreSQL store with gaps.py's simulated company, built once per (customers, months,
    seed): its name, and the URL of the server's maintenance database (for copies of it)."""
    import psycopg

    admin = server
    name = f"corridor_upkeep_c{customers}_m{months}_s{seed}"
    with psycopg.connect(admin, autocommit=True) as con:
        found = con.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name],
        ).fetchone()
        if found and found[0] == "built":
            log(f"reusing PostgreSQL database {name}")
            return name, admin
        con.execute(f"DROP DATABASE IF EXISTS {name}")
        con.execute(f"CREATE DATABASE {name}")
    data = Path(tempfile.mkdtemp(prefix="corridor-rollup-pg-"))
    try:
        url = on_database(admin, name)
        with contextlib.closing(open_store(url)) as store:
            fill(store, data, customers, months, seed, log)
            rollup.refresh(store)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("VACUUM ANALYZE")
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f"COMMENT ON DATABASE {name} IS 'built'")
    return name, admin


def on_database(server: str, name: str) -> str:
    """``server``'s URL, naming database ``name``."""
    parts = urlsplit(server)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def postgres_copy(name: str, admin: str) -> Any:
    """The URL of a scratch copy of database ``name``, dropped afterwards."""
    import psycopg

    scratch = f"{name}_scratch_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {scratch} TEMPLATE {name}")
    try:
        yield on_database(admin, scratch)
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")


def batches(
    store: Any,
    sizes: list[int],
    count: int,
    seed: int,
    modes: int = len(MODES),
    recent_days: int = RECENT_DAYS,
) -> dict[int, list[pa.Table]]:
    """``count`` batches per mode of each size: new feedback about interactions sampled among
    the store's last ``recent_days`` days of interactions (0: among all of them)."""
    need = sum(sizes) * count * modes
    where = ""
    if recent_days:
        newest = store.query("SELECT max(occurred_at) FROM interactions")[0][0]
        where = f"WHERE occurred_at >= TIMESTAMPTZ '{newest - timedelta(days=recent_days)}'"
    if store.dialect == "duckdb":
        inner = f"(SELECT * FROM interactions {where})" if where else "interactions"
        sql = f"SELECT * FROM {inner} USING SAMPLE {need} ROWS (reservoir, {seed})"
    else:  # a random sample, the same one for the same seed
        sql = f"SELECT * FROM interactions {where} ORDER BY md5(interaction_id || '{seed}') "
        sql += f"LIMIT {need}"
    rows = store.query(f"SELECT interaction_id, person_id, touchpoint FROM ({sql}) s")
    if len(rows) < need:
        raise SystemExit(f"{len(rows)} interactions to sample from, {need} needed")
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC) - timedelta(hours=1)
    out: dict[int, list[pa.Table]] = {}
    at = 0
    for size in sizes:
        out[size] = []
        for _ in range(count * modes):
            part = rows[at : at + size]
            at += size
            out[size].append(
                pa.table(
                    {
                        "feedback_id": [uuid.uuid4().hex for _ in part],
                        "person_id": [r[1] for r in part],
                        "interaction_id": [r[0] for r in part],
                        "touchpoint": [r[2] for r in part],
                        "occurred_at": pa.array(
                            [now - timedelta(minutes=int(m)) for m in rng.integers(0, 4320, size)],
                            pa.timestamp("us", tz="UTC"),
                        ),
                        "source": ["survey"] * size,
                        "expectation": rng.integers(0, 11, size).astype(float),
                        "experience": rng.integers(0, 11, size).astype(float),
                        "nps": rng.integers(0, 11, size),
                    }
                )
            )
    return out


def measure(
    url: str,
    sizes: list[int],
    count: int,
    seed: int,
    log: Any,
    modes: tuple[str, ...] = MODES,
    warmup: int = 1,
    recent_days: int = RECENT_DAYS,
) -> tuple[dict[str, int], dict[tuple[str, int], list[float]]]:
    """The store's counts, and each mode's times (ms) per batch size, modes taking turns (and,
    for the queue mode, :data:`EXTRAS`)."""
    times: dict[tuple[str, int], list[float]] = {
        (m, s): [] for m in (*modes, *EXTRAS) for s in sizes
    }
    query = Query.build(by=["touchpoint"])

    def timed(work: Any) -> float:
        t = time.perf_counter()
        work()
        return (time.perf_counter() - t) * 1000

    with contextlib.closing(open_store(url)) as store:
        counts = {k: store.count(k) for k in ("interactions", "feedback", "feedback_rollup")}
        log(f"store: {counts}")
        data = batches(store, sizes, count + warmup, seed, len(modes), recent_days)
        ingestors = {"none": NoRollup(store), "delta": Ingestor(store),
                     "queue": Ingestor(store, rollup_upkeep="background"),
                     "rebuild": Ingestor(store)}  # fmt: skip
        keep = rollup_delta.DELTA_MAX
        try:
            for size in sizes:
                for i, batch in enumerate(data[size]):
                    mode = modes[i % len(modes)]
                    rollup_delta.DELTA_MAX = 0 if mode == "rebuild" else keep
                    t = time.perf_counter()
                    report = ingestors[mode].ingest("feedback", batch)
                    ms = (time.perf_counter() - t) * 1000
                    if report.inserted != size:
                        raise RuntimeError(f"{report.inserted} of {size} stored")
                    extra = {}
                    if mode == "queue":
                        extra["read_queued"] = timed(lambda: rollup.sums(store, query, "gap"))
                        extra["fold"] = timed(lambda: after_commit.fold_all(store))
                        extra["read_folded"] = timed(lambda: rollup.sums(store, query, "gap"))
                    if i >= warmup * len(modes):  # each mode's first batches warm it up
                        times[(mode, size)].append(ms)
                        for name, took in extra.items():
                            times[(name, size)].append(took)
        finally:
            rollup_delta.DELTA_MAX = keep
            for ing in ingestors.values():
                ing.close()
    return counts, times


def pct(ms: list[float], q: float) -> float:
    return float(np.percentile(ms, q))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=260_000)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--seed", type=int, default=20250301)
    ap.add_argument("--sizes", default="20,500", help="records per batch, comma-separated")
    ap.add_argument("--batches", type=int, default=12, help="timed batches per mode and size")
    ap.add_argument(
        "--warmup", type=int, default=1, help="untimed batches per mode first (key indexes warm)"
    )
    ap.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the store")
    ap.add_argument(
        "--modes", default="none,delta,queue", help="of none,delta,queue,rebuild (none first)"
    )
    ap.add_argument("--recent-days", type=int, default=RECENT_DAYS,
                    help="the records are about interactions of the store's last this many "
                    "days (0: any interaction)")  # fmt: skip
    ap.add_argument(
        "--postgres", default=None, help="a PostgreSQL server URL: measure there instead"
    )
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.postgres:
            name, admin = build_postgres(args.postgres, args.customers, args.months, args.seed, log)
            url = stack.enter_context(postgres_copy(name, admin))
        else:
            work = args.workdir or Path(tempfile.mkdtemp(prefix="corridor-rollup-"))
            work.mkdir(parents=True, exist_ok=True)
            path = build(work, args.customers, args.months, args.seed, log)
            scratch = Path(tempfile.mkdtemp(prefix="corridor-rollup-scratch-")) / "store.duckdb"
            stack.callback(shutil.rmtree, scratch.parent, ignore_errors=True)
            shutil.copyfile(path, scratch)
            url = f"duckdb:///{scratch}"
        modes = tuple(m for m in args.modes.split(",") if m.strip())
        counts, times = measure(url, sizes, args.batches, args.seed, log, modes, args.warmup,
                                args.recent_days)  # fmt: skip

    results: dict[str, str] = {
        "interactions": str(counts["interactions"]),
        "recent_days": str(args.recent_days),
    }
    print(
        f"{'records':>8} {'mode':8} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}  "
        "upkeep (p50 / none p50 - 1; mean / none mean - 1)"
    )
    for size in sizes:
        none = pct(times[("none", size)], 50)
        none_mean = float(np.mean(times[("none", size)]))
        for mode in modes:
            ms = times[(mode, size)]
            p50, p95, mean = pct(ms, 50), pct(ms, 95), float(np.mean(ms))
            extra = (
                ""
                if mode == "none"
                else f"{(p50 / none - 1) * 100:+.0f} %; {(mean / none_mean - 1) * 100:+.0f} %"
            )
            print(f"{size:>8} {mode:8} {p50:8.0f} {p95:8.0f} {mean:8.0f}  {extra}")
            results[f"b{size}_{mode}_p50_ms"] = f"{p50:.0f}"
            if mode == "delta":
                results[f"b{size}_upkeep_pct"] = f"{(p50 / none - 1) * 100:.0f}"
                results[f"b{size}_upkeep_mean_pct"] = f"{(mean / none_mean - 1) * 100:.0f}"
            elif mode == "queue":
                results[f"b{size}_queue_upkeep_pct"] = f"{(p50 / none - 1) * 100:.0f}"
                results[f"b{size}_queue_upkeep_mean_pct"] = f"{(mean / none_mean - 1) * 100:.0f}"
            elif mode == "rebuild":
                results[f"b{size}_rebuild_upkeep_pct"] = f"{(p50 / none - 1) * 100:.0f}"
        if "queue" in modes:
            for name in EXTRAS:
                ms = times[(name, size)]
                p50, p95 = pct(ms, 50), pct(ms, 95)
                print(f"{size:>8} {name:12} {p50:4.0f} {p95:8.0f} {float(np.mean(ms)):8.0f}")
                results[f"b{size}_{name}_p50_ms"] = f"{p50:.0f}"
    results["wall_s"] = f"{time.perf_counter() - started:.0f}"
    print("RESULT " + " ".join(f"{k}={v}" for k, v in results.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
